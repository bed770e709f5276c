"""migrate.py's PostgreSQL engine (standard library only; migrate.py loads it from beside itself).

The stdlib has no PostgreSQL driver, so one `psql` session per run does the work: SQL goes in on
its stdin, and after each batch a `\\echo` of a per-run marker comes back on stdout, so the runner
knows where a batch's output ends. One session keeps the advisory lock (pg_advisory_lock, held by
the session) for the whole run. psql runs with ON_ERROR_STOP: the first error ends the session, and
PostgreSQL rolls back the open transaction when its connection goes — a failed migration is never
half applied. The password reaches psql only in its environment (PGPASSWORD), never on a command
line; the URL comes on migrate.py's stdin.
"""
import hashlib
import json
import os
import re
import secrets
import subprocess
import threading
import time
from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit, parse_qs

URL_FORM = "postgresql://USER:PASSWORD@HOST[:PORT]/DBNAME[?sslmode=MODE[&sslrootcert=/path/ca.crt]]"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Transaction control would end the runner's one transaction per migration.
TXN_RE = re.compile(r"^(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|PREPARE\s+TRANSACTION|"
                    r"COMMIT\s+PREPARED|ROLLBACK\s+PREPARED)\b", re.I)


class UrlError(ValueError):
    pass


def is_postgres(url: str) -> bool:
    return re.match(r"^postgres(ql)?(\+[a-z0-9]+)?://", url or "", re.I) is not None


def parse_url(url: str) -> Dict[str, str]:
    """The connection settings of a postgresql:// URL (SQLAlchemy's postgresql+driver:// too), as
    libpq environment variables; UrlError names DATABASE_URL and the form expected."""
    def bad(why: str) -> UrlError:
        return UrlError("DATABASE_URL %s: expected %s" % (why, URL_FORM))
    if not is_postgres(url):
        raise bad("is not a postgresql:// URL")
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise bad("is malformed (%s)" % e)
    name = unquote(u.path.lstrip("/"))
    if not u.hostname:
        raise bad("names no host")
    if not name or "/" in name:
        raise bad("names no database (the path after the host)")
    if not u.username:
        raise bad("names no user")
    env = {"PGHOST": u.hostname, "PGPORT": str(port or 5432), "PGUSER": unquote(u.username), "PGDATABASE": name}
    if u.password is not None:
        env["PGPASSWORD"] = unquote(u.password)
    query = parse_qs(u.query)
    mode = query.get("sslmode", [None])[-1]
    if mode is not None:
        if mode not in SSLMODES:
            raise bad("has sslmode=%s (one of %s)" % (mode, ", ".join(SSLMODES)))
        env["PGSSLMODE"] = mode
    # the CA file that pins the server's certificate (a managed server's: /etc/fdeploy/<app>.pg-root.crt)
    root = query.get("sslrootcert", [None])[-1]
    if root is not None:
        if not root.startswith("/") or "\0" in root:
            raise bad("has sslrootcert=%s (an absolute path to the server's CA certificate)" % root)
        env["PGSSLROOTCERT"] = root
    return env


def psql_env(conn: Dict[str, str]) -> Dict[str, str]:
    """psql's environment: the connection only (nothing of ours leaks in, no ~/.psqlrc: -X)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ")}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update(conn)
    env.update(PGCONNECT_TIMEOUT="10", PGAPPNAME="fdeploy-migrate", PGCLIENTENCODING="UTF8")
    return env


def lock_key(dbname: str) -> int:
    """The advisory lock's key: the same for every runner of this database (a signed 64-bit int)."""
    return int.from_bytes(hashlib.sha256(b"fdeploy-migrate:" + dbname.encode()).digest()[:8], "big", signed=True)


def literal(value: object) -> str:
    """An SQL literal of a str or int (standard_conforming_strings: '' is the only escape)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(value)
    if isinstance(value, int):
        return str(value)
    if "\0" in value:
        raise ValueError("NUL in a literal")
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------- the migration files

def statements(sql: str) -> List[str]:
    """SQL cut into statements at top-level ';' — quotes ('…', E'…', "…"), dollar quotes ($tag$…$tag$)
    and comments (--, nested /* */) understood. ValueError for an unterminated quote or comment, or
    a backslash outside one (a psql meta-command: the file goes to psql, which would run it)."""
    out, start, i, n = [], 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            depth, i = 1, i + 2
            while depth:
                if i >= n:
                    raise ValueError("an unterminated /* comment")
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c in "'\"":
            escapes = c == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            i += 1
            while True:
                if i >= n:
                    raise ValueError("an unterminated %s quote" % c)
                if escapes and sql[i] == "\\":
                    i += 2
                elif sql[i] == c:
                    if sql.startswith(c + c, i):
                        i += 2
                        continue
                    i += 1
                    break
                else:
                    i += 1
        elif c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])
            if m is None:
                i += 1
                continue
            end = sql.find(m.group(0), i + len(m.group(0)))
            if end < 0:
                raise ValueError("an unterminated %s quote" % m.group(0))
            i = end + len(m.group(0))
        elif c == "\\":
            raise ValueError("a backslash outside a string (psql meta-commands are not run: the file is SQL only)")
        elif c == ";":
            out.append(sql[start:i + 1])
            start = i = i + 1
        else:
            i += 1
    out.append(sql[start:])
    return [s for s in out if strip_comments(s).strip(" \t\r\n;")]


def strip_comments(stmt: str) -> str:
    return re.sub(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", "", stmt, flags=re.S).strip()


def check_sql(path: str, sql: str) -> str:
    """The file's SQL, checked: its statements, each ending in ';' (the last one may lack it).
    ValueError naming the file for transaction control or what psql would not take as SQL."""
    try:
        stmts = statements(sql)
    except ValueError as e:
        raise ValueError("%s: %s" % (path, e))
    for s in stmts:
        if TXN_RE.match(strip_comments(s)):
            raise ValueError("%s: contains transaction control (%r); the runner wraps each migration in its own "
                             "transaction" % (path, strip_comments(s)[:40]))
    return "".join(s if s.rstrip().endswith(";") else s + "\n;" for s in stmts)


# ---------------------------------------------------------------- the psql session

class SessionError(Exception):
    """psql ended (an SQL error with ON_ERROR_STOP, a lost connection) or could not start."""


class Session:
    """One psql process; run() sends SQL and returns its output lines up to this run's marker."""

    def __init__(self, conn: Dict[str, str], psql: str = "psql", timeout: float = 3600.0):
        self.marker = "__fdeploy_%s__" % secrets.token_hex(8)
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(
                [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=default", "-P", "pager=off"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=psql_env(conn),
                text=True, encoding="utf-8", bufsize=1, cwd="/")   # (runuser keeps root's cwd, which psql cannot enter)
        except OSError as e:
            raise SessionError("cannot run psql (the postgresql-client package): %s" % e)
        self.errors: List[str] = []
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.errors.append(line.rstrip("\n"))

    def error(self) -> str:
        self.proc.wait()
        self._err.join(5)
        lines = [x for x in self.errors if x.strip()]
        return "\n".join(lines[-6:]) or "psql exited with status %s" % self.proc.returncode

    def run(self, sql: str) -> List[str]:
        return self.stream(sql.rstrip() + "\n", (), "")

    def stream(self, head: str, lines, tail: str) -> List[str]:
        """HEAD, then LINES (e.g. the rows of a COPY … FROM STDIN, written as they come), then TAIL; the output."""
        try:
            self.proc.stdin.write(head)
            for line in lines:
                self.proc.stdin.write(line)
            self.proc.stdin.write(tail + "\\echo " + self.marker + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SessionError(self.error())
        out = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SessionError(self.error())
            line = line.rstrip("\n")
            if line == self.marker:
                return out
            out.append(line)

    def value(self, sql: str) -> str:
        """The one value SQL's query returns."""
        lines = self.run(sql)
        return "\n".join(lines)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- what migrate.py asks of the database

TABLE_SQL = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL, duration_ms INTEGER NOT NULL);"""


class Database:
    """migrate.py's PostgreSQL side: the lock, the version table, one migration per transaction."""

    def __init__(self, conn: Dict[str, str], psql: str = "psql"):
        self.conn = conn
        self.session = Session(conn, psql)
        self.name = conn["PGDATABASE"]
        self.session.run("SET client_min_messages = warning;")   # no NOTICEs (IF NOT EXISTS …) in the error shown

    def try_lock(self) -> bool:
        return self.session.value("SELECT pg_try_advisory_lock(%d);" % lock_key(self.name)) == "t"

    def read_applied(self) -> Dict[int, dict]:
        if self.session.value("SELECT to_regclass('schema_migrations') IS NULL;") == "t":
            return {}
        text = self.session.value("SELECT coalesce(json_agg(r ORDER BY r.version), '[]') "
                                  "FROM (SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations) r;")
        return {row["version"]: row for row in json.loads(text)}

    def has_tables(self) -> bool:
        return self.session.value("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                                  "AND n.nspname NOT LIKE 'pg_toast%');") == "t"

    def size(self) -> int:
        return int(self.session.value("SELECT pg_database_size(current_database());"))

    def ensure_table(self) -> None:
        self.session.run(TABLE_SQL)

    def apply(self, sql: str, finish_sql) -> int:
        """SQL and then FINISH_SQL(duration_ms) in one transaction; the time SQL took (ms). SessionError
        when any of it failed: the session is gone and PostgreSQL rolled the transaction back. A file
        that slipped a COMMIT past check_sql shows as another transaction id and fails too."""
        xid = self.session.value("BEGIN;\nSELECT txid_current();")
        start = time.monotonic()
        self.session.run(sql + "\n;")
        ms = round((time.monotonic() - start) * 1000)
        self.session.run("DO $fdeploy$ BEGIN IF txid_current() <> %s THEN RAISE EXCEPTION 'the migration ended the "
                         "runner''s transaction (COMMIT or ROLLBACK in the file)'; END IF; END $fdeploy$;\n%s\nCOMMIT;"
                         % (int(xid), finish_sql(ms)))
        return ms

    def close(self) -> None:
        self.session.close()


def dump(conn: Dict[str, str], dest: str, pg_dump: str = "pg_dump") -> Optional[str]:
    """pg_dump -Fc of the database into DEST (a new file, 0660); None when it worked, else psql's last words."""
    r = subprocess.run([pg_dump, "-Fc", "--no-owner", "-f", dest], env=psql_env(conn), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    if r.returncode != 0:
        return (r.stderr or "").strip()[-400:] or "pg_dump exited with status %d" % r.returncode
    return None


# ---------------------------------------------------------------- migrate.py's commands on PostgreSQL
# CORE is migrate.py (the migrations folder, the drift checks, Exit and its codes, the backup budget).

def _open(core, conn: Dict[str, str], lock: bool) -> Database:
    try:
        db = Database(conn)
        if lock and not db.try_lock():
            db.close()
            raise core.Exit(core.EXIT_LOCKED, "another migration runner is running on database %s (its advisory lock is held)" % conn["PGDATABASE"])
        return db
    except SessionError as e:
        raise core.Exit(core.EXIT_FAILED, "cannot connect to database %s on %s:%s (DATABASE_URL): %s"
                        % (conn["PGDATABASE"], conn["PGHOST"], conn["PGPORT"], e))


def label(conn: Dict[str, str]) -> str:
    return "database %s on %s" % (conn["PGDATABASE"], conn["PGHOST"])


def restore_point(core, conn: Dict[str, str], db: Database, args, version: int, take: bool = True, into: str = "") -> Optional[str]:
    """pg_dump -Fc of the database into the backup folder (`<db>-<time>-v<N>.pgdump`), after the kept
    backups are pruned to the budget (backup_budget.py: refused with the numbers before any change);
    then only the newest `keep` of this kind stay. TAKE False: only the pruning. INTO: a folder in the
    backup folder for the dump instead (the pre-release backup's; its own kind is pruned by its owner).
    The dump's path."""
    from datetime import datetime, timezone
    from pathlib import Path
    budget = core.budget_module()
    stem = re.sub(r"[^A-Za-z0-9_]", "_", conn["PGDATABASE"])
    bdir = Path(args.backup_dir)
    bdir.mkdir(mode=0o770, parents=True, exist_ok=True)
    for stale in bdir.glob(".%s-*.partial" % stem):   # left by a crash; we hold the lock
        stale.unlink()
    try:
        budget.make_room(str(bdir), db.size() if take else 0, args.keep_bytes, "the pg_dump of %s before the schema change" % label(conn),
                         "the schema, the data and the live release are unchanged", core.log)
    except budget.NoRoom as e:
        raise core.Exit(core.EXIT_REFUSED, str(e))
    if not take:
        return None
    folder = bdir
    if into:
        folder = bdir / into
        if folder.parent != bdir or not re.fullmatch(r"pre-release-[0-9TZ]+-[0-9a-f]{12}", into):
            raise core.Exit(core.EXIT_INVALID, "--into must name a pre-release-<time>-<release> folder in the backup folder")
        folder.mkdir(mode=0o770, exist_ok=True)
    final = folder / ("%s-%s-v%d.pgdump" % (stem, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"), version))
    tmp = bdir / (".%s.partial" % final.name)   # renamed only when complete
    start = time.monotonic()
    err = dump(conn, str(tmp))
    if err is not None:
        tmp.unlink(missing_ok=True)
        raise core.Exit(core.EXIT_FAILED, "pg_dump of %s to %s failed, nothing was changed: %s" % (label(conn), final, err))
    os.chmod(tmp, 0o660)
    os.replace(tmp, final)
    core.log("backup: %s, %s in %.1f s -> %s" % (label(conn), budget.human(final.stat().st_size), time.monotonic() - start, final))
    if into:
        return str(final)
    pattern = re.compile(re.escape(stem) + r"-\d{8}T\d{12}Z-v\d+\.pgdump$")
    for old in sorted(p for p in bdir.iterdir() if pattern.match(p.name))[:-args.keep]:
        old.unlink()
        core.log("backup: removed old %s" % old.name)
    return str(final)


def _sql(core, path, data: bytes) -> str:
    try:
        return check_sql(str(path), data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise core.Exit(core.EXIT_FAILED, "%s: not UTF-8: %s" % (path, e))
    except ValueError as e:
        raise core.Exit(core.EXIT_FAILED, str(e))


def cmd_status(core, args, conn: Dict[str, str]) -> int:
    migrations = core.load_migrations(args.dir, "postgres")
    db = _open(core, conn, lock=False)
    try:
        applied = db.read_applied()
    finally:
        db.close()
    problems = core.find_problems(migrations, applied)
    out = {"current": core.current_version(applied), "applied": [applied[v] for v in sorted(applied)],
           "pending": [m.info() for m in migrations if m.version not in applied]}
    if problems:
        out["problems"] = problems
    print(json.dumps(out))
    if problems:
        raise core.Exit(core.EXIT_REFUSED, "\n".join(problems))
    print("schema_version=%d" % out["current"])
    return 0


def cmd_up(core, args, conn: Dict[str, str]) -> int:
    migrations = core.load_migrations(args.dir, "postgres")
    os.umask(0o007)   # the dumps: the owner and the app's group (the slot users share it)
    db = _open(core, conn, lock=True)
    try:
        applied = db.read_applied()
        problems = core.find_problems(migrations, applied)
        if problems:
            raise core.Exit(core.EXIT_REFUSED, "refusing to migrate {}:\n  {}".format(label(conn), "\n  ".join(problems)))
        version = core.current_version(applied)
        pending = [m for m in migrations if m.version not in applied]
        sqls = {m.version: _sql(core, m.up_path, m.up_bytes) for m in pending}   # every file checked before any change
        if applied or db.has_tables():   # nothing pending: only the kept backups over the budget go
            restore_point(core, conn, db, args, version, take=bool(pending))
        db.ensure_table()
        if not pending:
            core.log("%s: up to date" % label(conn))
        for m in pending:
            sql = sqls[m.version]
            core.log("applying %s ..." % m.up_path.name)

            def record(ms: int, m=m) -> str:
                from datetime import datetime, timezone
                return "INSERT INTO schema_migrations (version, name, checksum, applied_at, duration_ms) VALUES (%s, %s, %s, %s, %s);" % (
                    literal(m.version), literal(m.name), literal(m.checksum),
                    literal(datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")), literal(ms))
            try:
                db.apply(sql, record)
            except SessionError as e:
                raise core.Exit(core.EXIT_FAILED, "%s failed and was rolled back: %s\ndatabase left at schema version %d; "
                                "later migrations were not attempted" % (m.up_path, e, version))
            version = m.version
            core.log("applied %s" % m.up_path.name)
    finally:
        db.close()
    print("schema_version=%d" % version)
    return 0


def cmd_down(core, args, conn: Dict[str, str]) -> int:
    migrations = core.load_migrations(args.dir, "postgres")
    if args.to < 0:
        raise core.Exit(core.EXIT_INVALID, "--to must be >= 0")
    os.umask(0o007)
    db = _open(core, conn, lock=True)
    try:
        applied = db.read_applied()
        problems = core.find_problems(migrations, applied)
        if problems:
            raise core.Exit(core.EXIT_REFUSED, "refusing to revert {}:\n  {}".format(label(conn), "\n  ".join(problems)))
        version = core.current_version(applied)
        revert = [m for m in reversed(migrations) if m.version in applied and m.version > args.to]
        sqls = {m.version: _sql(core, m.down_path, m.down_path.read_bytes()) for m in revert}
        if not revert:
            core.log("%s: already at or below version %d" % (label(conn), args.to))
        else:
            restore_point(core, conn, db, args, version)
        for m in revert:
            sql = sqls[m.version]
            core.log("reverting %s ..." % m.down_path.name)
            try:
                db.apply(sql, lambda ms, v=m.version: "DELETE FROM schema_migrations WHERE version = %s;" % literal(v))
            except SessionError as e:
                raise core.Exit(core.EXIT_FAILED, "%s failed and was rolled back: %s\ndatabase left at schema version %d" % (m.down_path, e, version))
            version = max((v for v in applied if v < m.version), default=0)
            core.log("reverted %s" % m.down_path.name)
    finally:
        db.close()
    print("schema_version=%d" % version)
    return 0


def cmd_dump(core, args, conn: Dict[str, str]) -> int:
    """A restore point outside a migration (before the release commands): the same dump and budget,
    under the same lock; prints {"dump": path}."""
    os.umask(0o007)
    db = _open(core, conn, lock=True)
    try:
        applied = db.read_applied()
        path = restore_point(core, conn, db, args, core.current_version(applied), into=args.into or "")
    finally:
        db.close()
    print(json.dumps({"dump": path}))
    return 0


def cmd_loss(core, args, conn: Dict[str, str]) -> int:
    """What `down --to N` would drop: the down migrations run in a transaction that is rolled back,
    counting before and after each one. The database is unchanged; the tables a down alters stay
    locked until the rollback (lock_timeout 2 s: a busy table fails the count rather than stalling the app)."""
    migrations = core.load_migrations(args.dir, "postgres")
    result = {"to": args.to, "downs": []}
    db = _open(core, conn, lock=False)
    try:
        applied = db.read_applied()
        problems = core.find_problems(migrations, applied)
        if problems:
            raise core.Exit(core.EXIT_REFUSED, "cannot tell what a rollback of {} drops:\n  {}".format(label(conn), "\n  ".join(problems)))
        result["from"] = core.current_version(applied)
        result["backupName"] = "%s-<time>-v%d.pgdump" % (re.sub(r"[^A-Za-z0-9_]", "_", conn["PGDATABASE"]), result["from"])
        try:
            db.session.run("BEGIN;\nSET LOCAL lock_timeout = '2s';")
            state = tables(db.session)
            for m in [m for m in reversed(migrations) if m.version in applied and m.version > args.to]:
                db.session.run(_sql(core, m.down_path, m.down_path.read_bytes()))
                now = tables(db.session)
                result["downs"].append({"version": m.version, "name": m.name, "lost": core._lost(state, now)})
                state = now
            db.session.run("ROLLBACK;")
        except SessionError as e:
            raise core.Exit(core.EXIT_FAILED, "could not count what the rollback drops (nothing was changed): %s" % e)
    finally:
        db.close()
    print(json.dumps(result))
    return 0


def tables(session: Session) -> Dict[str, dict]:
    """{table: {"rows", "columns": {column: (values, non_default)}}} of the current schema's tables,
    the shape migrate.py's _lost compares."""
    cols = json.loads(session.value(
        "SELECT coalesce(json_agg(json_build_array(table_name, column_name, column_default) ORDER BY table_name, ordinal_position), '[]') "
        "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' "
        "AND table_name IN (SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema());"))
    out: Dict[str, dict] = {}
    for t, c, dflt in cols:
        q, qc = '"%s"' % t.replace('"', '""'), '"%s"' % c.replace('"', '""')
        other = "count(*) FILTER (WHERE %s IS NOT NULL AND %s IS DISTINCT FROM (%s))" % (qc, qc, dflt) if dflt and "(" not in dflt \
            else "count(%s)" % qc   # a function default (nextval, now()) is not evaluated
        values, non_default = session.value("SELECT count(%s) || ',' || %s FROM %s;" % (qc, other, q)).split(",")
        entry = out.setdefault(t, {"rows": int(session.value("SELECT count(*) FROM %s;" % q)), "columns": {}})
        entry["columns"][c] = (int(values), int(non_default))
    return out
