"""The PostgreSQL server the stack manages (flask-deploy:database, engine postgres): Debian's
postgresql installed, TLS with a self-signed certificate, and one role and database per app.

pg-install: the package when missing, the certificate, the server settings; pg-app: the app's role
(its password as a SCRAM verifier computed here: the plaintext reaches neither a command line nor
PostgreSQL's logs), its database (owned by the role, CONNECT revoked from PUBLIC) and pg_hba.conf,
rebuilt from every app's entry: only the app's role, to its own database, from its own servers
(scram-sha-256; hostssl from another host). pg-status: version, running, the database's size.

Every app's entry is /etc/fdeploy/postgres/apps/<app>.json (root 0700 folder; no password); the
steps of two apps on one server take /etc/fdeploy/postgres/.lock in turn."""
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .app import check_name
from .apt import argv as apt_argv
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .lock import flock_within

Log = Callable[[str], None]
ETC = "/etc/fdeploy/postgres"
APPS = ETC + "/apps"
CERT, KEY, HBA = ETC + "/server.crt", ETC + "/server.key", ETC + "/pg_hba.conf"
ROOT = ETC + "/root.crt"   # the self-signed certificate the apps pin, once CERT is one it issued (ensure_certificate)
IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED = ("postgres", "template0", "template1", "public")
ADDRESS = re.compile(r"(\d{1,3}(\.\d{1,3}){3}|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)")
SCRAM_ITERATIONS = 4096   # PostgreSQL's own default (scram_iterations)
PSQL = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]


def ident(value: object, key: str) -> str:
    if not isinstance(value, str) or not IDENT.fullmatch(value) or value.startswith("pg_") or value in RESERVED:
        raise AgentError("bad %s %r (flask-deploy:%s: a PostgreSQL name: a-z, 0-9, _, starting with a letter or _; "
                         "not postgres, template0/1, public or pg_*)" % (key, value, key))
    return value


# --- SCRAM-SHA-256 (RFC 5802/7677), as PostgreSQL stores it in pg_authid.rolpassword ---

def scram_verifier(password: str, salt: Optional[bytes] = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. The password is printable ASCII
    (the config's rule), which SASLprep leaves as it is."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()   # noqa: E731
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(hashlib.sha256(client_key).digest()), b64(server_key))


def verifier_matches(stored: str, password: str) -> bool:
    """Whether STORED (a role's rolpassword) is PASSWORD's verifier (with STORED's own salt)."""
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", stored or "")
    if not m:
        return False
    return hmac.compare_digest(scram_verifier(password, base64.b64decode(m.group(2)), int(m.group(1))), stored)


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quoted(name: str) -> str:
    return '"' + name + '"'   # names are IDENT-checked: no quote inside


# --- what the server's settings are, from the apps' entries (pure: pytest) ---

def wanted_settings(remote: bool) -> Dict[str, str]:
    """The server settings the stack sets (ALTER SYSTEM: PostgreSQL writes them itself, in its own
    postgresql.auto.conf): TLS with the stack's certificate, pg_hba from a root-owned file, listening
    beyond localhost only when an app connects from another host."""
    return {"listen_addresses": "*" if remote else "localhost", "hba_file": HBA, "ssl": "on", "ssl_cert_file": CERT,
            "ssl_key_file": KEY, "ssl_min_protocol_version": "TLSv1.2", "password_encryption": "scram-sha-256"}


RESTART_SETTINGS = ("listen_addresses", "hba_file")   # context postmaster: in force after a restart only


def hba_text(apps: List[Dict[str, Any]]) -> bytes:
    """pg_hba.conf: the postgres superuser by peer on the socket; each app's role to its own database
    only (127.0.0.1 for an app on this server, hostssl from its servers' addresses); nothing else."""
    lines = ["# written by flask-deploy (pg-app): do not edit; every line not here is refused",
             "local   all  postgres  peer"]
    for a in sorted(apps, key=lambda a: a["app"]):
        lines.append("# app %s" % a["app"])
        if a.get("local"):
            lines.append("host    %s  %s  127.0.0.1/32  scram-sha-256" % (a["db"], a["role"]))
        for addr in a.get("allow", []):
            cidr = addr + "/32" if re.fullmatch(r"[\d.]+", addr) else addr
            lines.append("hostssl %s  %s  %s  scram-sha-256" % (a["db"], a["role"], cidr))
    return ("\n".join(lines) + "\n").encode()


def app_entry(params: Dict[str, Any]) -> Dict[str, Any]:
    app = check_name(params.get("APP"))
    allow = params.get("ALLOW", "")
    allow = allow.split() if isinstance(allow, str) else None
    if allow is None or not all(ADDRESS.fullmatch(a) for a in allow):
        raise AgentError("the app servers' addresses %r: expected IPv4 addresses or host names (flask-deploy:server.host)" % (params.get("ALLOW"),))
    return {"app": app, "db": ident(params.get("DB"), "database.name"), "role": ident(params.get("ROLE"), "database.user"),
            "local": bool(params.get("LOCAL")), "allow": sorted(set(allow))}


def conflict(entry: Dict[str, Any], others: List[Dict[str, Any]]) -> Optional[str]:
    """Another app's entry that names ENTRY's database or role: one app per role and database."""
    for o in others:
        if o["app"] != entry["app"] and (o["db"] == entry["db"] or o["role"] == entry["role"]):
            return ("database %s / role %s: app '%s' on this database server uses %s already; give this app its own "
                    "(flask-deploy:database.name and database.user)" % (entry["db"], entry["role"], o["app"],
                                                                       "that database" if o["db"] == entry["db"] else "that role"))
    return None


BACKUP_SETTINGS = ETC + "/backup.json"   # pgBackRest's (pg_backup.SETTINGS): which app's backup covers this server
# a pgBackRest restore under way (pg_backup_ops.restore): the data folder may be half restored; while it is
# here nothing starts PostgreSQL but the restore, which the next PgBackup step runs again
RESTORE_PENDING = ETC + "/restore-pending"


def backup_owner(app: str, settings: Optional[bytes]) -> Optional[str]:
    """Another app's pgBackRest backup covers this server (the whole cluster): APP's database may not join it."""
    try:
        owner = json.loads(settings).get("app") if settings else None
    except ValueError:
        owner = None
    if not isinstance(owner, str) or owner in ("", app):
        return None
    return ("app '%s' refused: app '%s''s backup (flask-deploy:backup) covers this whole database server; set another database.host\n"
            "pgBackRest backs up and restores the whole PostgreSQL server: a restore for '%s' would rewind '%s' too. Point this stack's "
            "database.host at another server, or remove backup from app '%s''s stack first" % (app, owner, owner, app, owner))


# --- the server ---

@contextmanager
def server_lock(host: Host, wait_seconds: int, log: Log) -> Iterator[None]:
    """One pg step at a time on this server (two apps' deploys may share it)."""
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path(ETC), 0o755)
    fd = os.open(host.path(ETC + "/.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        flock_within(fd, wait_seconds, host.sleep, lambda: log("waiting for another deploy's PostgreSQL step on this server…"),
                     lambda waited: AgentError("another deploy's PostgreSQL step holds %s/.lock; waited %ds (timeouts.lockWait)" % (ETC, waited)))
        yield
    finally:
        os.close(fd)


def cluster(host: Host) -> Tuple[str, str, str]:
    """The cluster Debian's postgresql made: (version, name, state), e.g. ("15", "main", "online")."""
    r = host.run(["pg_lsclusters", "--no-header"])
    rows = [l.split() for l in (r.stdout or "").splitlines() if l.strip()]
    if r.returncode != 0 or not rows:
        raise AgentError("no PostgreSQL cluster on this server (pg_lsclusters: %s); create one: pg_createcluster 15 main --start"
                         % ((r.stdout or "") + (r.stderr or "")).strip()[-200:])
    return rows[0][0], rows[0][1], rows[0][3]


def psql(host: Host, sql: str, db: str = "postgres") -> str:
    """SQL (on stdin: never a command line) run by the postgres superuser over the local socket."""
    r = host.run(PSQL + ["-d", db], input=sql)
    if r.returncode != 0:
        raise AgentError("psql (as the postgres user, database %s) failed: %s" % (db, ((r.stderr or "") + (r.stdout or "")).strip()[-400:]))
    return (r.stdout or "").strip()


def ensure_installed(host: Host, log: Log) -> bool:
    if host.which("pg_lsclusters") and host.run(["dpkg-query", "-W", "-f=${Status}", "postgresql"]).stdout.endswith("install ok installed"):
        return False
    log("installing postgresql")
    r = host.run(apt_argv(["postgresql"]), merge_output=True)
    if r.returncode != 0:
        raise AgentError("apt-get install postgresql failed (exit %d): %s" % (r.returncode, (r.stdout or "").strip()[-400:]))
    return True


def cert_names(host: Host) -> List[str]:
    """The names (DNS and IP address) the server's certificate's subjectAltName covers; [] without one
    (a certificate made before pinning: its CN only)."""
    if not read_regular(host.path(CERT)):
        return []
    r = host.run(["openssl", "x509", "-in", host.path(CERT), "-noout", "-ext", "subjectAltName"])
    return sorted(set(re.findall(r"(?:DNS|IP Address):([^,\s]+)", r.stdout or ""))) if r.returncode == 0 else []


def san_line(names: List[str]) -> str:
    """subjectAltName= for openssl req: an IP address as IP:, a host name as DNS: (libpq's verify-full
    matches the host the app connects to against these)."""
    return "subjectAltName=" + ",".join(("IP:" if re.fullmatch(r"[\d.]+", n) else "DNS:") + n for n in sorted(set(names)))


def ensure_certificate(host: Host, name: str, log: Log) -> bool:
    """A certificate (10 years) whose subjectAltName covers NAME (the address apps connect to: they pin the
    server's self-signed certificate, sslmode=verify-full), made when missing or when it does not cover NAME
    (one made before pinning; a new name for the server: the names it had are kept).
    A new name keeps the key: the served certificate is then issued by the self-signed one the apps pinned
    (kept as ROOT), so every stack still pinned to it goes on connecting. A self-signed certificate made
    again, even with the same key and subject, would not do: OpenSSL trusts a self-signed server
    certificate only when it is the very one pinned (tests/python/test_agent_pg_cert.py). Only without a
    usable key and anchor is a new key made (every stack pins the new one at its next up). The key root:postgres 0640."""
    have = cert_names(host)
    if read_regular(host.path(KEY)) and name in have:
        return False
    names = sorted(set(have + [name]))
    anchor = _anchor(host)
    tmp = host.path(ETC + "/.new-%s" % secrets.token_hex(4))
    if anchor:
        log("the server's TLS certificate for %s: issued with its key by the pinned one (stacks that pinned it keep connecting)" % ", ".join(names))
        if anchor != ROOT:
            write_atomic(host.path(ROOT), read_regular(host.path(anchor)) or b"", 0o644)
        _openssl(host, ["req", "-x509", "-new", "-key", host.path(KEY), "-CA", host.path(ROOT), "-CAkey", host.path(KEY),
                        "-days", "3650", "-subj", "/CN=%s/OU=server" % name, "-addext", san_line(names),
                        "-addext", "basicConstraints=critical,CA:FALSE", "-out", tmp + ".crt"])
        os.chmod(tmp + ".crt", 0o644)
        os.rename(tmp + ".crt", host.path(CERT))
        return True
    log("making the server's TLS certificate for %s (a new key)" % ", ".join(names))
    _openssl(host, ["req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "3650",
                    "-subj", "/CN=%s" % name, "-addext", san_line(names), "-keyout", tmp + ".key", "-out", tmp + ".crt"])
    if os.path.lexists(host.path(ROOT)):
        os.unlink(host.path(ROOT))   # another key's: the new certificate is its own anchor again
    os.chown(tmp + ".key", 0, host.user_ids("postgres")[1])
    os.chmod(tmp + ".key", 0o640)
    os.chmod(tmp + ".crt", 0o644)
    os.rename(tmp + ".key", host.path(KEY))
    os.rename(tmp + ".crt", host.path(CERT))
    return True


def _openssl(host: Host, args: List[str]) -> str:
    r = host.run(["openssl"] + args, merge_output=True, umask=0o077)
    if r.returncode != 0:
        raise AgentError("openssl could not make the PostgreSQL certificate /etc/fdeploy/postgres/server.crt: %s" % (r.stdout or "").strip()[-300:])
    return r.stdout or ""


def _anchor(host: Host) -> Optional[str]:
    """The self-signed certificate the apps pin (ROOT, else CERT: the layout before, and one made before
    pinning) when it can issue with KEY: its own key, a CA; None when a new key must be made."""
    if not read_regular(host.path(KEY)):
        return None
    for path in (ROOT, CERT):
        if not read_regular(host.path(path)):
            continue
        r = host.run(["openssl", "verify", "-CAfile", host.path(path), host.path(path)], merge_output=True)
        own = host.run(["openssl", "x509", "-in", host.path(path), "-noout", "-pubkey"])
        key = host.run(["openssl", "pkey", "-in", host.path(KEY), "-pubout"])
        ca = host.run(["openssl", "x509", "-in", host.path(path), "-noout", "-ext", "basicConstraints"])
        if r.returncode == 0 and own.returncode == 0 and own.stdout and own.stdout == key.stdout and "CA:TRUE" in (ca.stdout or ""):
            return path
    return None


def pinned(host: Host) -> bytes:
    """The certificate the apps pin: ROOT once the served one is issued by it, else the served one."""
    return read_regular(host.path(ROOT)) or read_regular(host.path(CERT)) or b""


def certificate(host: Host) -> str:
    """The server's pinned certificate (PEM; public): what the apps pin."""
    pem = pinned(host).decode()
    m = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    return m.group(0) + "\n" if m else ""


def fingerprint(host: Host) -> str:
    """SHA-256 of the pinned certificate (it stays the same when the server gets a new name)."""
    pem = pinned(host).decode()
    m = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem, re.S)
    return hashlib.sha256(base64.b64decode("".join(m.group(1).split()))).hexdigest() if m else ""


def entries(host: Host) -> List[Dict[str, Any]]:
    folder = host.path(APPS)
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        data = read_regular(os.path.join(folder, name)) if name.endswith(".json") else None
        if data:
            out.append(json.loads(data))
    return out


def apply_settings(host: Host, log: Log) -> bool:
    """pg_hba.conf and the server settings as the apps' entries say; a restart when a setting that needs
    one differs (the listen address, the hba file: the first configuration), else a reload when anything changed."""
    version, name, state = cluster(host)
    unit = "postgresql@%s-%s" % (version, name)
    if state != "online" and os.path.lexists(host.path(RESTORE_PENDING)):
        raise AgentError("PostgreSQL stays stopped: a restore from the backup is pending (%s); pulumi up runs it again\n"
                         "an interrupted restore left the data folder half restored (fdeploy backup status)" % RESTORE_PENDING)
    if state != "online":
        log("starting PostgreSQL %s/%s" % (version, name))
        host.systemctl("enable", "postgresql")
        host.systemctl("start", unit)
    apps = entries(host)
    changed = write_atomic(host.path(HBA), hba_text(apps), 0o644)
    return alter_system(host, wanted_settings(any(a.get("allow") for a in apps)), RESTART_SETTINGS, log, reload=changed) or changed


def alter_system(host: Host, wanted: Dict[str, str], restart_keys: Tuple[str, ...], log: Log, reload: bool = False) -> bool:
    """ALTER SYSTEM for each WANTED setting pg_settings shows otherwise; then a restart when one of RESTART_KEYS
    (context postmaster) differs, else a reload when anything differs (or RELOAD). Whether any differed."""
    rows = psql(host, "SELECT name, setting FROM pg_settings WHERE name IN (%s);" % ", ".join(literal(k) for k in sorted(wanted)))
    current = dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)
    differ = sorted(k for k, v in wanted.items() if current.get(k) != v)
    if differ:
        log("setting %s" % ", ".join(differ))
        psql(host, "".join("ALTER SYSTEM SET %s = %s;\n" % (k, literal(wanted[k])) for k in differ))
    restart = [k for k in differ if k in restart_keys]
    if restart:
        version, name, _ = cluster(host)
        log("restarting PostgreSQL %s/%s (%s)" % (version, name, ", ".join(restart)))
        host.systemctl("restart", "postgresql@%s-%s" % (version, name))
    elif differ or reload:
        psql(host, "SELECT pg_reload_conf();")
    return bool(differ)


def pg_install(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    name = params.get("NAME", "")
    if not isinstance(name, str) or not ADDRESS.fullmatch(name):
        raise AgentError("the database server's name %r: expected a host name or IPv4 address (flask-deploy:database.host.host)" % (name,))
    with server_lock(host, lock_wait, log):
        changed = ensure_installed(host, log)
        renewed = ensure_certificate(host, name, log)
        own_dir(host.path(APPS), 0o700)
        if os.path.lexists(host.path(RESTORE_PENDING)):
            # an interrupted restore: the PgBackup step after this one restores again, then sets the settings
            log("a restore from the backup is pending (%s): PostgreSQL is left to the PgBackup step" % RESTORE_PENDING)
            version, _, _ = cluster(host)
            return {"ok": True, "changed": renewed or changed, "version": version, "fingerprint": fingerprint(host), "certificate": certificate(host)}
        changed = apply_settings(host, log) or renewed or changed
        if renewed:
            psql(host, "SELECT pg_reload_conf();")   # a running server takes the new certificate on a reload
        version, _, _ = cluster(host)
        return {"ok": True, "changed": changed, "version": version, "fingerprint": fingerprint(host), "certificate": certificate(host)}


def pg_app(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    entry = app_entry(params)
    password = params.get("PASSWORD")
    if not isinstance(password, str) or not re.fullmatch(r"[\x21-\x7e]{16,200}", password):
        raise AgentError("bad PASSWORD (flask-deploy:databasePassword: 16-200 printable ASCII characters, no spaces)")
    db, role = entry["db"], entry["role"]
    with server_lock(host, lock_wait, log):
        problem = conflict(entry, entries(host))
        if problem:
            raise AgentError(problem)
        problem = backup_owner(entry["app"], read_regular(host.path(BACKUP_SETTINGS)))
        if problem:
            raise AgentError(problem)
        changed = False
        stored = psql(host, "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = %s;" % literal(role))
        exists = bool(psql(host, "SELECT 1 FROM pg_roles WHERE rolname = %s;" % literal(role)))
        if not exists:
            log("creating role %s" % role)
            psql(host, "CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %s;"
                 % (quoted(role), literal(scram_verifier(password))))
            changed = True
        elif not verifier_matches(stored, password):
            log("setting role %s's password" % role)
            psql(host, "ALTER ROLE %s LOGIN PASSWORD %s;" % (quoted(role), literal(scram_verifier(password))))
            changed = True
        owner = psql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s;" % literal(db))
        if not owner:
            log("creating database %s" % db)
            psql(host, "CREATE DATABASE %s OWNER %s ENCODING 'UTF8' LOCALE 'C.UTF-8' TEMPLATE template0;" % (quoted(db), quoted(role)))
            changed = True
        elif owner != role:
            raise AgentError("database %s belongs to role %s, not %s: set another flask-deploy:database.name\n"
                             "(or give it to %s yourself: ALTER DATABASE %s OWNER TO %s)" % (db, owner, role, role, db, role))
        # no other role may connect: only the owner (and superusers)
        acl = psql(host, "SELECT coalesce(datacl::text, '') FROM pg_database WHERE datname = %s;" % literal(db))
        if acl == "" or re.search(r"(^|[{,])=", acl):
            psql(host, "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT ALL ON DATABASE %s TO %s;" % (quoted(db), quoted(db), quoted(role)))
            changed = True
        path = host.path("%s/%s.json" % (APPS, entry["app"]))
        own_dir(host.path(APPS), 0o700)
        changed = write_atomic(path, json.dumps(entry, sort_keys=True).encode() + b"\n", 0o600) or changed
        changed = apply_settings(host, log) or changed
        return {"ok": True, "changed": changed, "db": db, "role": role}


def pg_status(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """What fdeploy status and the drift check show: the server's version, whether it runs, the app's
    database (APP: the one its entry names; or DB) and its size."""
    if "DB" in params:
        db = ident(params.get("DB"), "database.name")
    else:
        data = read_regular(host.path("%s/%s.json" % (APPS, check_name(params.get("APP")))))
        db = json.loads(data)["db"] if data else ""
    if not host.which("pg_lsclusters"):
        return {"ok": True, "installed": False, "running": False, "exists": False}
    version, _, state = cluster(host)
    out: Dict[str, Any] = {"ok": True, "installed": True, "version": version, "running": state == "online", "exists": False}
    if state == "online" and db:
        size = psql(host, "SELECT pg_database_size(datname) FROM pg_database WHERE datname = %s;" % literal(db))
        out.update(exists=size.isdigit(), sizeBytes=int(size) if size.isdigit() else 0)
    if state == "online":
        from .pg_backup_ops import brief_status   # pgBackRest's (issue 33), when the server has it
        out.update(brief_status(host))
    return out
