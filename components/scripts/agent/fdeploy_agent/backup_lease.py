"""The backup replica's lease (issue 24 item 5): an old server that comes back must not overwrite the
replica of the server that replaced it. The replica holds <path>/fdeploy-owner, one line
"<id> <host> <claimed-at>" naming the server that owns it (the id: random, made once per server and
app, /etc/fdeploy/<app>.backup-id; the host: the stack's server.host then; an older lease holds the
id alone). Every write of it is atomic, so two servers never both own it:
  S3    create: PUT If-None-Match: *; replace: PUT If-Match: <ETag of the lease just read>
        (412: someone else wrote it first: read it again and decide again)
  SFTP  create: put a temp file, `ln` it to fdeploy-owner (hardlink@openssh.com: link(2), which
        never overwrites), rm the temp; replace: rm it right after reading that it names the
        server taken over, then create; every write is read back to know who won.
A deploy decides (claim): none yet -> claimed; this server's -> nothing to do; another server's ->
taken over only when this server has no database (fresh: a new server restoring from the replica,
the recovery path) or backup.takeover names that server, else refused (naming both servers and the
fix). The backup unit replicates only while check() says the lease is this server's."""
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .host import Host

LEASE = "fdeploy-owner"
FENCE_EVERY = 10


class Unreachable(Exception):
    """The target did not answer (or would not take the lease): the message says why."""


class Refused(Exception):
    """The replica is another server's: the message names both servers and the fix."""


@dataclass(frozen=True)
class Lease:
    id: str
    host: str = ""
    at: str = ""

    def describe(self) -> str:
        """The owner as people see it: id, host, when."""
        h = "host %s" % self.host if self.host and self.host != "-" else "host not recorded: an older lease"
        return "%s (%s%s)" % (self.id, h, ", claimed %s" % self.at if self.at else "")


def parse(raw: Optional[bytes]) -> Optional[Lease]:
    """A lease's first line (at most 512 bytes, only name characters kept); None when there is none."""
    if not raw:
        return None
    line = re.sub(r"[^A-Za-z0-9.:_ -]", "", raw[:512].decode("latin-1").split("\n", 1)[0])
    words = line.split()
    if not words:
        return Lease("(unreadable)")
    return Lease(words[0][:64], words[1][:253] if len(words) > 1 else "", words[2][:32] if len(words) > 2 else "")


@dataclass(frozen=True)
class Target:
    """Where the replica is (the run conf's fields; validated by backup.py)."""
    kind: str   # sftp | s3
    path: str
    host: str = ""
    port: str = "22"
    user: str = ""
    known_hosts: str = ""
    bucket: str = ""
    endpoint: str = ""
    region: str = ""

    def name(self) -> str:
        if self.kind == "sftp":
            return "sftp://%s@%s:%s%s" % (self.user, self.host, self.port, self.path)
        return "s3://%s%s" % (self.bucket, "/" + self.path if self.path else "")


@dataclass(frozen=True)
class Credentials:
    """sftp: the key file's path (root-only, or systemd's credential); s3: the keys."""
    sftp_key: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""


class Transport:
    """Reads and writes the lease object on the target (sftp or curl through the Host seam)."""

    def __init__(self, host: Host, target: Target, creds: Credentials) -> None:
        self.host, self.target, self.creds = host, target, creds
        self.tmp = tempfile.mkdtemp(prefix="fdeploy-lease-")

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- sftp
    def _sftp(self, batch: str) -> Tuple[int, str]:
        t = self.target
        r = self.host.run(["sftp", "-q", "-b", "-", "-i", self.creds.sftp_key, "-P", t.port, "-o", "BatchMode=yes",
                           "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + t.known_hosts,
                           "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2",
                           "%s@%s" % (t.user, t.host)], input=batch)
        return r.returncode, (r.stderr or "").strip()[:300]

    # -- s3 (SigV4 by curl; the payload's hash signed too; the keys reach curl as its config on stdin)
    def _s3(self, method: str, body: bytes, headers: List[str]) -> Tuple[int, Dict[str, str], bytes]:
        t = self.target
        base = (t.endpoint or "https://s3.%s.amazonaws.com" % (t.region or "us-east-1")).rstrip("/")
        url = "%s/%s/%s%s" % (base, t.bucket, t.path + "/" if t.path else "", LEASE)
        bodyf, hdrf, outf = (os.path.join(self.tmp, n) for n in ("body", "hdr", "out"))
        with open(bodyf, "wb") as f:
            f.write(body)
        for p in (hdrf, outf):
            if os.path.exists(p):
                os.unlink(p)
        argv = ["curl", "-sS", "--max-time", "10", "--config", "-", "--aws-sigv4", "aws:amz:%s:s3" % (t.region or "us-east-1"),
                "-H", "x-amz-content-sha256: " + hashlib.sha256(body).hexdigest(), "-X", method]
        if method == "PUT":
            argv += ["--data-binary", "@" + bodyf]
        for h in headers:
            argv += ["-H", h]
        argv += ["-D", hdrf, "-o", outf, "-w", "%{http_code}", url]
        config = 'user = "%s:%s"\n' % (self.creds.access_key_id, self.creds.secret_access_key)
        r = self.host.run(argv, input=config)
        if r.returncode != 0:
            raise Unreachable((r.stderr or "curl exit %d" % r.returncode).strip()[:300])
        code = int(r.stdout.strip()[-3:]) if re.fullmatch(r"\s*[0-9]{3}\s*", r.stdout or "") else 0
        hdrs: Dict[str, str] = {}
        if os.path.exists(hdrf):
            for line in open(hdrf, encoding="latin-1"):
                k, sep, v = line.partition(":")
                if sep:
                    hdrs[k.strip().lower()] = v.strip()
        out = open(outf, "rb").read() if os.path.exists(outf) else b""
        return code, hdrs, out

    def read(self) -> Tuple[Optional[Lease], str]:
        """The lease now and its ETag (S3); Unreachable when the target does not answer."""
        t = self.target
        if t.kind == "sftp":
            local = os.path.join(self.tmp, "owner")
            if os.path.exists(local):
                os.unlink(local)
            rc, err = self._sftp("-get %s/%s %s\n" % (t.path, LEASE, local))
            if rc != 0:
                raise Unreachable(err or "sftp exit %d" % rc)
            return parse(open(local, "rb").read() if os.path.exists(local) else None), ""
        code, hdrs, out = self._s3("GET", b"", [])
        if code == 200:
            return parse(out), re.sub(r'[^A-Za-z0-9"/_-]', "", hdrs.get("etag", ""))[:128]
        if code == 404:
            return None, ""
        raise Unreachable("HTTP %d: %s" % (code, out[:200].decode("utf-8", "replace")))

    def write(self, line: str, replace: bool, etag: str) -> Optional[int]:
        """Writes LINE as the lease (atomically: never over another's). S3: the HTTP status
        (a 412/409/404: another write won); sftp: None. Unreachable when it could not."""
        t = self.target
        if t.kind == "sftp":
            tmp, lease = "%s/%s.%s.tmp" % (t.path, LEASE, line.split()[0]), "%s/%s" % (t.path, LEASE)
            local = os.path.join(self.tmp, "me")
            with open(local, "w") as f:
                f.write(line)
            p, batch = "", []
            for d in t.path.strip("/").split("/"):
                p += "/" + d
                batch.append("-mkdir %s" % p)
            batch.append("put %s %s" % (local, tmp))
            if replace:
                batch.append("-rm %s" % lease)
            batch += ["-ln %s %s" % (tmp, lease), "-rm %s" % tmp]   # ln fails when it exists: someone else's
            rc, err = self._sftp("\n".join(batch) + "\n")
            if rc == 255:
                raise Unreachable(err or "sftp exit 255")
            self.sftp_write = (rc, err)
            return None
        code, _, out = self._s3("PUT", line.encode(), ["If-Match: " + etag] if replace else ["If-None-Match: *"])
        if code // 100 == 2 or code in (412, 409, 404):
            return code
        raise Unreachable("cannot write the lease (HTTP %d: %s)" % (code, out[:200].decode("utf-8", "replace")))


@dataclass(frozen=True)
class Me:
    id: str
    host: str = ""

    def describe(self) -> str:
        return "%s (host %s)" % (self.id, self.host or "?")


def write_lease(t: Transport, me: Me, replace: bool, etag: str, now: str) -> Tuple[bool, Optional[Lease]]:
    """The lease naming ME, atomically, then read back: (True, lease) when it is ME's now, (False,
    lease as it is now) when another write won. Unreachable when the target did not answer."""
    t.write("%s %s %s\n" % (me.id, me.host or "-", now), replace, etag)
    lease, _ = t.read()
    if lease is None and t.target.kind == "sftp":
        rc, why = getattr(t, "sftp_write", (0, ""))
        if rc == 0:
            raise Unreachable("the SFTP server did not create %s/%s as a hard link of the temporary file (ln: hardlink@openssh.com, "
                              "which OpenSSH's sftp server offers): %s" % (t.target.path, LEASE, why))
        raise Unreachable("cannot write the lease %s/%s.%s.tmp on the SFTP server (a full disk, permissions?): %s" % (t.target.path, LEASE, me.id, why))
    return (lease is not None and lease.id == me.id), lease


def refusal(target: Target, owner: Lease, me: Me, takeover: str, host_key: str = "server.host") -> str:
    """HOST_KEY: the setting that points the deploy at this server (server.host; database.host for PostgreSQL's)."""
    other = owner.host if owner.host and owner.host != "-" else ""
    setting = ""
    if takeover == me.id:
        setting = " (backup.takeover names this server itself: it takes over only from the server it names, the owner)"
    elif takeover:
        setting = " (backup.takeover is set to %s, which is not the owner: it takes over only from the server it names)" % takeover
    hostkey = " (and server.hostKey)" if host_key == "server.host" else " (its host and hostKey)"
    return ("the replica %s is another server's (host %s): deploy refused, nothing changed; check flask-deploy:%s\n"
            "the replica belongs to another server: %s; this server is %s and has a database of its own%s. Deploying here would let "
            "this server replicate its own, older database over the other server's newer writes, so the deploy stops; nothing on this "
            "server was changed. If the other server is the live one: point %s%s back at %s and deploy again. "
            "To make this server the owner on purpose (the other server stops replicating; its writes that this server does not have "
            "can no longer be restored): pulumi config set --path backup.takeover %s, then pulumi up"
            % (target.name(), other or "?", host_key, owner.describe(), me.describe(), setting, host_key, hostkey, other or "it", owner.id))


def claim(t: Transport, me: Me, fresh: bool, takeover: str, now: Callable[[], str], host_key: str = "server.host") -> List[str]:
    """The deploy's decision: the lines to show when the replica is ME's now; Refused when it is
    another server's (or changed hands during the deploy); Unreachable when the target does not
    answer. A takeover applies to the owner seen first: when another write wins meanwhile, the new
    owner is refused (someone else claimed it just now)."""
    first: Optional[str] = None
    for n in range(1, 5):
        lease, etag = t.read()
        seen = lease.id if lease else "none"
        if first is None:
            first = seen
        elif lease and lease.id != me.id and seen != first:
            raise Refused("the replica %s was claimed by another server during this deploy: %s (before: %s); nothing on this server was "
                          "changed. Find out which server is to own it: deploy again to see both, and use backup.takeover to take it over "
                          "on purpose" % (t.target.name(), lease.describe(), first))
        if n > 3:
            break
        if lease is None:
            ours, _ = write_lease(t, me, False, "", now())
            if ours:
                return ["lease: the replica is claimed for this server %s" % me.describe()]
            continue   # another server created it first: decide again
        if lease.id == me.id:
            lines = ["lease: the replica is this server's %s" % me.describe()]
            if takeover:
                lines.append("note: backup.takeover (%s) has nothing to do (this server owns the replica); it can be removed: "
                             "pulumi config rm --path backup.takeover" % takeover)
            return lines
        if fresh:
            reason = "this server has no database: it restores from the replica (a new server after a server loss)"
        elif takeover and takeover == lease.id:
            reason = "backup.takeover names that server"
        else:
            raise Refused(refusal(t.target, lease, me, takeover, host_key))
        ours, _ = write_lease(t, me, True, etag, now())
        if ours:
            return ["lease: this server %s took the replica over from server %s: %s; that server stops replicating within %d s"
                    % (me.describe(), lease.describe(), reason, FENCE_EVERY)]
    raise Refused("the lease of %s kept changing during this deploy (now: %s); nothing on this server was changed: deploy again"
                  % (t.target.name(), lease.describe() if lease else "none"))


def check(t: Transport, me: Me, now: Callable[[], str]) -> Tuple[str, str]:
    """The backup unit's fence: ("ours", "") when the lease is ME's (or none yet: claimed now),
    ("other", why) when it is another server's, ("unreachable", why)."""
    try:
        lease, _ = t.read()
        if lease is None:
            ours, lease = write_lease(t, me, False, "", now())
            if ours:
                return "ours", ""
    except Unreachable as e:
        return "unreachable", "cannot reach the replica: %s" % e
    if lease is not None and lease.id == me.id:
        return "ours", ""
    owner = lease.describe() if lease else "none"
    return "other", ("the replica now belongs to server %s (a restore or a takeover there); this server (%s) no longer replicates to it and "
                     "stays stopped. To make this server the owner again on purpose: backup.takeover %s and deploy to it"
                     % (owner, me.id, lease.id if lease else ""))


def owner_line(t: Transport, me: Me) -> str:
    """The lease, for `fdeploy backup status`."""
    try:
        lease, _ = t.read()
    except Unreachable:
        return "lease: target unreachable"
    if lease is None:
        return "lease: none"
    if lease.id == me.id:
        return "lease: this server %s" % lease.describe()
    return "lease: ANOTHER server %s: this one (%s) does not replicate (backup.takeover %s and a deploy here make it the owner)" % (
        lease.describe(), me.id, lease.id)
