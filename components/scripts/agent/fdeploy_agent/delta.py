"""Delta uploads (components/delta.ts): a new release is uploaded as only the files its base (the
release the stack deployed before, components/release-basis.ts: chosen by the client, no SSH step)
lacks, and assembled here by release-install.
The upload of a delta holds DELTA_FILE ({"base", "manifest": {path: sha256 hex} of every file}) and
the files the base lacks. assemble() builds the release in a temporary folder beside releases/<id>:
each file from the upload, else linked from a kept release that verifies (the named base first, then
the live one and the newest installed, at most MAX_BASES read), else copied from an earlier upload of
this app when its content hashes to the manifest's (an up that failed before its install, e.g. on
pip); it checks the whole tree against the id and only then renames it in place.
A kept release is used only when every one of its files still hashes to its id (a release's id is the
hash of its files), and only when it holds root's regular files in root's folders, not writable by
anyone else: the app can read a release, never plant a link or a file in one."""
import hashlib
import json
import os
import re
import shutil
import stat
from typing import Any, Callable, Dict, List, Optional

from . import app as apps
from . import release
from .errors import AgentError
from .fsutil import read_regular
from .host import Host

Log = Callable[[str], None]
DELTA_FILE = ".fdeploy-delta.json"
SKIP = (release.MARKER, ".venv")   # what an install adds to the top of a release
MAX_BASES = 3                      # kept releases verified at most per deploy (each is read whole)


def check_manifest(value: Any) -> Dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise AgentError("MANIFEST must be an object {path: sha256}")
    for p, h in value.items():
        parts = p.split("/") if isinstance(p, str) else []
        if not parts or any(x in ("", ".", "..") for x in parts) or "\0" in p or p in SKIP or p == DELTA_FILE:
            raise AgentError("MANIFEST must be {relative path: sha256} (not %r)" % (p,))
        if not isinstance(h, str) or not re.fullmatch(r"[0-9a-f]{64}", h):
            raise AgentError("MANIFEST must be {relative path: sha256 in hex} (not %r for %r)" % (h, p))
    return value


def _safe(st: os.stat_result, uid: int) -> bool:
    return st.st_uid == uid and not st.st_mode & 0o022


def scan(folder: str) -> Optional[Dict[str, str]]:
    """{path: sha256} of FOLDER (a kept release) when it verifies: a root-owned real folder of
    root-owned regular files and folders nobody else can write, whose tree hash is its name;
    otherwise None. Links are never followed (nor allowed, but for the install's .venv)."""
    uid = os.geteuid()
    try:
        top = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode) or not _safe(top, uid):
        return None
    files: Dict[str, str] = {}
    tree = hashlib.sha256()
    entries: List[str] = []
    for d, dirs, names in os.walk(folder):
        for n in dirs + names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, folder)
            st = os.lstat(p)
            if rel in SKIP:
                continue
            if not _safe(st, uid) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                return None
            if stat.S_ISREG(st.st_mode):
                entries.append(rel)
    for rel in sorted(entries):
        fd = os.open(os.path.join(folder, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        h = hashlib.sha256()
        with os.fdopen(fd, "rb") as fh:
            tree.update(rel.encode() + b"\0")
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                tree.update(chunk)
            tree.update(b"\0")
        files[rel] = h.hexdigest()
    if tree.hexdigest()[:12] != os.path.basename(folder):
        return None
    return files


def candidates(host: Host, app: apps.App, rid: str) -> List[str]:
    """Kept, installed releases other than RID: the live one first, then the newest installed."""
    releases = host.path(app.root + "/releases")
    live = release.server_link(host, app.root + "/current")
    live_id = os.path.basename(live) if live else ""
    kept = []
    try:
        names = os.listdir(releases)
    except OSError:
        names = []
    for n in names:
        if re.fullmatch(r"[0-9a-f]{12}", n) and n != rid:
            mark = read_regular("%s/%s/%s" % (releases, n, release.MARKER))
            if mark is not None:
                try:
                    at = str(json.loads(mark).get("installed_at", ""))
                except (ValueError, AttributeError):
                    at = ""
                kept.append((n == live_id, at, n))
    return [n for _, _, n in sorted(kept, reverse=True)]


def is_delta(upload: str) -> bool:
    return os.path.lexists(os.path.join(upload, DELTA_FILE))


class Sources:
    """Where a file of the new release can come from besides the upload, read lazily: the named base
    first, then the other kept releases that verify, then earlier uploads (each file checked by hash)."""

    def __init__(self, host: Host, app: apps.App, rid: str, base: str, upload: str, log: Log) -> None:
        self.host, self.app, self.upload, self.log = host, app, upload, log
        rest = [n for n in candidates(host, app, rid) if n != base]
        self.pending = ([base] if base != rid else []) + rest
        self.scanned = 0
        self.by_hash: Dict[str, str] = {}   # sha256 -> a verified kept release's file
        self.used: List[str] = []

    def kept(self, h: str) -> Optional[str]:
        while h not in self.by_hash and self.pending and self.scanned < MAX_BASES:
            n = self.pending.pop(0)
            folder = self.host.path("%s/releases/%s" % (self.app.root, n))
            files = scan(folder)
            self.scanned += 1
            if files is None:
                if os.path.lexists(folder):
                    self.log("kept release %s no longer matches its content hash (or is not root's alone): never used as a base" % n)
                continue
            self.used.append(n)
            for p, fh in sorted(files.items(), reverse=True):
                self.by_hash[fh] = os.path.join(folder, p)
        return self.by_hash.get(h)

    def uploaded(self, p: str, h: str) -> Optional[bytes]:
        """P's content from an earlier upload of this app when it hashes to H."""
        parent = os.path.dirname(self.upload)
        try:
            names = sorted(os.listdir(parent))
        except OSError:
            return None
        for n in names:
            if re.fullmatch(r"[0-9a-f]{12}", n) and os.path.join(parent, n) != self.upload:
                data = read_regular(os.path.join(parent, n, p))
                if data is not None and hashlib.sha256(data).hexdigest() == h:
                    return data
        return None


def assemble(host: Host, app: apps.App, rid: str, upload: str, dest: str, log: Log) -> Dict[str, Any]:
    """releases/<rid> (DEST, a local path) from the delta in UPLOAD: built in a temporary folder,
    checked against RID, renamed in place. Raises AgentError (nothing left behind) when a file is
    neither uploaded nor anywhere it can come from."""
    raw = read_regular(os.path.join(upload, DELTA_FILE))
    try:
        delta = json.loads(raw or b"")
        base = release.check_id(delta.get("base"))
        manifest = check_manifest(delta.get("manifest"))
    except (ValueError, AttributeError) as e:
        raise AgentError("the delta upload of release %s is unreadable (%s); run pulumi up again" % (rid, e)) from e
    sources = Sources(host, app, rid, base, upload, log)
    tmp = "%s.assemble-%d" % (dest, os.getpid())
    remove(tmp)
    os.mkdir(tmp, 0o755)
    try:
        linked = earlier = 0
        for p in sorted(manifest):
            target = os.path.join(tmp, p)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            sent = os.path.join(upload, p)
            if os.path.isfile(sent) and not os.path.islink(sent):
                shutil.copy2(sent, target, follow_symlinks=False)
                continue
            kept = sources.kept(manifest[p])
            if kept is not None:
                os.link(kept, target, follow_symlinks=False)
                linked += 1
                continue
            data = sources.uploaded(p, manifest[p])
            if data is None:
                raise AgentError("release %s: %s is neither in its delta upload nor in a kept release that verifies; `pulumi up --replace URN`"
                                 " of the -basis step\n(base %s is gone or changed and no earlier upload holds the file; nothing installed."
                                 " That up uploads every file; `pulumi stack --show-urns` lists the URNs)" % (rid, p, base))
            with open(target, "xb") as fh:
                fh.write(data)
            os.chmod(target, 0o644)
            earlier += 1
        got = release.tree_hash(tmp)
        if got != rid:
            raise AgentError("release %s assembled from kept release %s and the upload hashes to %s; nothing installed, run pulumi up again"
                             % (rid, base, got))
        remove(dest)
        os.rename(tmp, dest)
    finally:
        remove(tmp)
    return {"base": ", ".join(sources.used) or base, "linked": linked, "earlier": earlier, "sent": len(manifest) - linked - earlier}


def remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
