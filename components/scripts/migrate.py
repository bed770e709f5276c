#!/usr/bin/env python3
"""SQLite migration runner (standard library only; runs on the server).

usage: migrate.py [--db PATH | --url-stdin] --dir DIR [--backup-dir DIR] [--keep N] [--keep-bytes N] check|status|up [--no-copy]|down --to N [--no-copy]|loss --to N|dump

With --url-stdin the database is PostgreSQL: its postgresql:// URL is the first line of stdin (never
on a command line) and migrate_pg.py beside this file does the engine's part (psql, an advisory lock
instead of the lock file, pg_dump restore points); everything else here holds for both engines.
--no-copy (SQLite): the agent made the replica's restore point the undo (backup.beforeChange: replica).

Exit codes: 0 ok (also "nothing to do"), 1 a migration or the database failed
(the failing migration was rolled back), 2 bad usage or invalid migrations
directory, 3 refused (applied migration changed or missing, or the database is
newer than this release), 75 another runner holds the lock.

stdout: `check` and `loss` print one JSON line. `status`, `up` and `down` end a successful
run (exit 0) with the line `schema_version=N`; `status` prints one JSON line
before it. Every other message goes to stderr.
"""
import argparse
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import stat
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

EXIT_FAILED, EXIT_INVALID, EXIT_REFUSED, EXIT_LOCKED = 1, 2, 3, 75
NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)(\.postgres)?\.(up|down)\.sql$")
EXPECTED = ("expected NNNN_name.up.sql + NNNN_name.down.sql (4 digits from 0001, no gaps; name: a-z 0-9 _), "
            "optionally with NNNN_name.postgres.up.sql + NNNN_name.postgres.down.sql: that version's SQL on PostgreSQL")
TABLE_SQL = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL, duration_ms INTEGER NOT NULL)"""
# Transaction control inside a file would break the one-transaction guarantee.
TXN_RE = re.compile(r"^(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)


class Exit(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- migrations dir

class Migration:
    def __init__(self, version, name, up_path, down_path, other_up=None):
        self.version, self.name = version, name
        self.up_path, self.down_path = up_path, down_path
        # Read once: the checksum is of exactly the bytes that get executed.
        self.up_bytes = up_path.read_bytes()
        self.checksum = hashlib.sha256(self.up_bytes).hexdigest()
        # a version with PostgreSQL's own pair: the other engine's up file's checksum stays valid too, for a
        # history moved between the engines (fdeploy db migrate-to-postgres [--back]) or recorded before the pair
        self.checksums = {self.checksum} | ({hashlib.sha256(other_up.read_bytes()).hexdigest()} if other_up else set())

    def info(self):
        return {"version": self.version, "name": self.name, "checksum": self.checksum}


def load_migrations(directory, engine="sqlite"):
    """Validate the directory and return migrations sorted by version (exit 2 if invalid). ENGINE
    postgres: a version's NNNN_name.postgres.{up,down}.sql pair, when there is one, instead of its
    NNNN_name.{up,down}.sql (which every version has: SQLite's, and PostgreSQL's without a pair of its own)."""
    d = Path(directory)
    if not d.is_dir():
        raise Exit(EXIT_INVALID, f"migrations directory {d} does not exist")
    errors, found = [], {}  # found: version -> {name: {"up"/"down" (+ ".postgres"): path}}
    for entry in sorted(d.iterdir()):
        if not entry.name.endswith(".sql"):
            continue  # README, .gitkeep, ... are allowed
        m = NAME_RE.match(entry.name)
        if not m or not entry.is_file():
            errors.append(f"{entry.name}: bad migration file name; {EXPECTED}")
            continue
        found.setdefault(int(m[1]), {}).setdefault(m[2], {})[(m[3] or "")[1:] + m[4]] = entry
    migrations = []
    for version in sorted(found):
        names = found[version]
        if len(names) > 1:
            files = ", ".join(p.name for n in sorted(names) for p in names[n].values())
            errors.append(f"duplicate migration number {version:04d}: {files}; {EXPECTED}")
            continue
        (name, files), = names.items()
        for tag in ("", "postgres"):
            for have, missing in (("up", "down"), ("down", "up")):
                if tag + have in files and tag + missing not in files:
                    errors.append(f"{files[tag + have].name}: missing {version:04d}_{name}{'.' + tag if tag else ''}.{missing}.sql; {EXPECTED}")
        if "postgresup" in files and "up" not in files:
            errors.append(f"{files['postgresup'].name}: missing {version:04d}_{name}.up.sql + .down.sql "
                          f"(every version has them; the .postgres pair replaces them on PostgreSQL); {EXPECTED}")
        elif "up" in files and "down" in files:
            if engine == "postgres" and "postgresup" in files and "postgresdown" in files:
                migrations.append((version, name, files["postgresup"], files["postgresdown"], files["up"]))
            else:
                migrations.append((version, name, files["up"], files["down"], files.get("postgresup")))
    # Numbers must be exactly 1..N; name the first file after each gap.
    expected = 1
    for version in sorted(found):
        if version != expected:
            first = sorted(p.name for n in found[version].values() for p in n.values())[0]
            errors.append(f"{first}: expected migration number {expected:04d} here "
                          f"(numbers start at 0001 with no gaps); {EXPECTED}")
        expected = version + 1
    if errors:
        raise Exit(EXIT_INVALID, "invalid migrations in the folder {} (flask-deploy:migrationsDir):\n  {}".format(d, "\n  ".join(errors)))
    return [Migration(*m) for m in migrations]


def split_statements(sql):
    """Split a script into single statements.

    Cut at each ';' where sqlite3.complete_statement says a statement ends, so
    ';' inside strings, comments and CREATE TRIGGER bodies is handled, and so
    are several statements on one line. A trailing statement without ';' is
    kept (SQLite reports it if it is really incomplete).
    """
    statements, start = [], 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start:i + 1]):
            statements.append(sql[start:i + 1])
            start = i + 1
    statements.append(sql[start:])
    return [s for s in statements if _strip_comments(s)]


def _strip_comments(stmt):
    """Statement text without leading whitespace and comments ('' if nothing else)."""
    return re.sub(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", "", stmt, flags=re.S).strip()


# ---------------------------------------------------------------- database

KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}


def not_regular(path, mode):
    return Exit(EXIT_FAILED, f"{path} is {KIND.get(stat.S_IFMT(mode), 'not a regular file')}, not a regular "
                             "file: remove it (as the app user) and deploy again")


def check_files(db):
    """The database and the files SQLite opens beside it are regular files or absent (lstat: a
    symlink is refused too). Opening a FIFO would block for good, a device or socket fail obscurely."""
    for path in (db, f"{db}-wal", f"{db}-shm", f"{db}-journal"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode)


def connect(db):
    try:
        # a new database is created 0660 (SQLite's own default is 0644 less the umask): its -wal
        # and -shm take its mode, so every slot user of the app's group can write all three
        os.close(os.open(db, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o660))
    except FileNotFoundError:
        pass   # no folder: SQLite says so below
    except OSError as e:
        raise Exit(EXIT_FAILED, f"cannot open database {db}: {e}")
    try:
        conn = sqlite3.connect(db, isolation_level=None, timeout=5)  # we issue BEGIN/COMMIT
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")  # the live app keeps reading meanwhile
    except sqlite3.Error as e:
        raise Exit(EXIT_FAILED, f"cannot open database {db}: {e} (running as uid {os.getuid()}, gid {os.getgid()}; {file_modes(db)})")
    return conn


def file_modes(db):
    """Who owns the database's folder and files, and their modes: what an "unable to open" hinges on."""
    out = []
    for p in (os.path.dirname(db) or ".", db, db + "-wal", db + "-shm", db + "-journal"):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        out.append(f"{os.path.basename(p) or p} {stat.S_IMODE(st.st_mode):04o} {st.st_uid}:{st.st_gid}")
    return ", ".join(out)


def read_applied(conn):
    """{version: row dict} of applied migrations ({} if the table does not exist)."""
    if conn is None or not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").fetchone():
        return {}
    cur = conn.execute("SELECT version, name, checksum, applied_at, duration_ms "
                       "FROM schema_migrations ORDER BY version")
    cols = [c[0] for c in cur.description]
    return {row[0]: dict(zip(cols, row)) for row in cur}


def find_problems(migrations, applied):
    """Reasons to refuse to touch this database (drift between files and DB)."""
    by_version = {m.version: m for m in migrations}
    newest = migrations[-1].version if migrations else 0
    problems = []
    for version, row in sorted(applied.items()):
        m = by_version.get(version)
        if m is None and version > newest:
            problems.append(
                f"the database has {version:04d}_{row['name']}.up.sql applied, newer than this release's newest "
                f"({newest:04d}): deploy a release with it, or restore a backup")
        elif m is None:
            problems.append(f"applied migration {version:04d}_{row['name']} has no files in the "
                            "migrations directory (flask-deploy:migrationsDir); restore them (never delete a migration)")
        elif row["checksum"] not in m.checksums:
            problems.append(f"{m.up_path.name} was changed after it was applied "
                            f"(checksum {row['checksum'][:12]}… now {m.checksum[:12]}…); "
                            "add a new migration instead")
    return problems


def current_version(applied):
    return max(applied, default=0)


HELD_LOCKS = []  # open until the process ends: the lock is released with it


def acquire_lock(db):
    # The lock file is never deleted: removing it while another runner waits
    # on it would let two runners hold "the" lock at once.
    path = f"{db}.migrate.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o660)
    except OSError as e:
        raise Exit(EXIT_FAILED, f"cannot open lock file {path} (does the database's directory exist?): {e}")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise not_regular(path, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Exit(EXIT_LOCKED, f"another migration runner is running on {db} (lock {path} is held)")
    return fd  # held until the process exits


def has_data(db):
    # A WAL database can hold its only commits in the -wal file.
    return any(os.path.exists(p) and os.path.getsize(p) > 0 for p in (db, f"{db}-wal"))


def budget_module():
    """backup_budget.py, from beside this file (the migrate step installs them together)."""
    return load_beside("backup_budget")


def backup(conn, db, backup_dir, keep, version, keep_bytes, take=True):
    """Online backup via the SQLite backup API (in steps, with progress), after the kept backups are
    pruned to the budget (backup_budget.py; refused with the numbers when it cannot fit, before any
    change); then only the newest `keep` of this kind stay. TAKE False: only the pruning."""
    budget = budget_module()
    stem = Path(db).stem
    bdir = Path(backup_dir)
    bdir.mkdir(mode=0o770, parents=True, exist_ok=True)
    for stale in bdir.glob(f".{stem}-*.partial"):  # left by a crash; we hold the lock
        stale.unlink()
    need = budget.size_of(conn) if take else 0
    try:
        budget.make_room(str(bdir), need, keep_bytes, f"the backup of {Path(db).name} before the schema change",
                         "the schema, the data and the live release are unchanged", log)
    except budget.NoRoom as e:
        raise Exit(EXIT_REFUSED, str(e))
    if not take:
        return
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    final = bdir / f"{stem}-{stamp}-v{version}.sqlite3"
    tmp = bdir / f".{final.name}.partial"  # renamed only when complete
    start = time.monotonic()
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            os.chmod(tmp, 0o660)
            budget.copy(conn, dst, Path(db).name, log)
            dst.execute("PRAGMA journal_mode=DELETE")  # self-contained single file
        finally:
            dst.close()
        os.replace(tmp, final)
    except (sqlite3.Error, OSError) as e:
        raise Exit(EXIT_FAILED, f"backup of {db} to {final} failed, nothing was changed: {e}")
    log(f"backup: {Path(db).name}, {budget.human(final.stat().st_size)} in {time.monotonic() - start:.1f} s -> {final}")
    pattern = re.compile(re.escape(stem) + r"-\d{8}T\d{12}Z-v\d+\.sqlite3$")
    backups = sorted(p for p in bdir.iterdir() if pattern.match(p.name))  # name order = time order
    for old in backups[:-keep]:
        old.unlink()
        log(f"backup: removed old {old.name}")


def run_in_transaction(conn, path, sql_bytes, finish):
    """Execute one migration file and `finish(conn)` in a single transaction."""
    try:
        sql = sql_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Exit(EXIT_FAILED, f"{path}: not UTF-8: {e}")
    statements = split_statements(sql)
    for stmt in statements:
        if TXN_RE.match(_strip_comments(stmt)):
            raise Exit(EXIT_FAILED, f"{path}: contains transaction control ({_strip_comments(stmt)[:40]!r}); "
                                    "the runner wraps each migration in its own transaction")
    # Not executescript(): it COMMITs any open transaction before running.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in statements:
            conn.execute(stmt)
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise sqlite3.IntegrityError(f"foreign key violations after migration: {bad[:5]}")
        finish(conn)
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:  # some errors already rolled back
            conn.execute("ROLLBACK")
        raise Exit(EXIT_FAILED, f"{path} failed and was rolled back: {e}")


# ---------------------------------------------------------------- commands

def cmd_check(args):
    migrations = load_migrations(args.dir)
    print(json.dumps({"migrations": [m.info() for m in migrations]}))
    return 0


def cmd_status(args):
    migrations = load_migrations(args.dir)
    check_files(args.db)
    conn = connect(args.db) if os.path.exists(args.db) else None  # never create it here
    applied = read_applied(conn)
    problems = find_problems(migrations, applied)
    out = {
        "current": current_version(applied),
        "applied": [applied[v] for v in sorted(applied)],
        "pending": [m.info() for m in migrations if m.version not in applied],
    }
    if problems:
        out["problems"] = problems
    print(json.dumps(out))
    if problems:
        raise Exit(EXIT_REFUSED, "\n".join(problems))
    print(f"schema_version={out['current']}")
    return 0


def cmd_up(args):
    migrations = load_migrations(args.dir)
    # the DB, its -wal/-shm, the lock and backups: the owner and the app's group, which the slot
    # users share (each deploy's migrations run as the one the live release does not run as)
    os.umask(0o007)
    HELD_LOCKS.append(acquire_lock(args.db))
    check_files(args.db)
    existed = has_data(args.db)
    conn = connect(args.db)
    applied = read_applied(conn)
    problems = find_problems(migrations, applied)
    if problems:
        raise Exit(EXIT_REFUSED, "refusing to migrate {}:\n  {}".format(args.db, "\n  ".join(problems)))
    version = current_version(applied)
    pending = [m for m in migrations if m.version not in applied]
    if existed:   # nothing pending: only the kept backups over the budget go
        backup(conn, args.db, args.backup_dir, args.keep, version, args.keep_bytes, take=bool(pending) and not args.no_copy)
    conn.execute(TABLE_SQL)
    if not pending:
        log(f"{args.db}: up to date")
    for m in pending:
        log(f"applying {m.up_path.name} ...")
        start = time.monotonic()

        def record(c, m=m, start=start):
            c.execute("INSERT INTO schema_migrations VALUES (?, ?, ?, ?, ?)", (
                m.version, m.name, m.checksum,
                datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                round((time.monotonic() - start) * 1000)))

        try:
            run_in_transaction(conn, m.up_path, m.up_bytes, record)
        except Exit as e:
            raise Exit(e.code, f"{e}\ndatabase left at schema version {version}; "
                               "later migrations were not attempted")
        version = m.version
        log(f"applied {m.up_path.name}")
    print(f"schema_version={version}")
    return 0


def cmd_down(args):
    migrations = load_migrations(args.dir)
    if args.to < 0:
        raise Exit(EXIT_INVALID, "--to must be >= 0")
    os.umask(0o007)
    HELD_LOCKS.append(acquire_lock(args.db))
    check_files(args.db)
    if not os.path.exists(args.db):
        log(f"{args.db} does not exist: nothing to revert")
        print("schema_version=0")
        return 0
    existed = has_data(args.db)
    conn = connect(args.db)
    applied = read_applied(conn)
    problems = find_problems(migrations, applied)
    if problems:
        raise Exit(EXIT_REFUSED, "refusing to revert {}:\n  {}".format(args.db, "\n  ".join(problems)))
    version = current_version(applied)
    revert = [m for m in reversed(migrations) if m.version in applied and m.version > args.to]
    if not revert:
        log(f"{args.db}: already at or below version {args.to}")
    elif existed:
        backup(conn, args.db, args.backup_dir, args.keep, version, args.keep_bytes, take=not args.no_copy)
    for m in revert:
        log(f"reverting {m.down_path.name} ...")
        try:
            run_in_transaction(conn, m.down_path, m.down_path.read_bytes(),
                               lambda c, v=m.version: c.execute(
                                   "DELETE FROM schema_migrations WHERE version = ?", (v,)))
        except Exit as e:
            raise Exit(e.code, f"{e}\ndatabase left at schema version {version}")
        version = max((v for v in applied if v < m.version), default=0)
        log(f"reverted {m.down_path.name}")
    print(f"schema_version={version}")
    return 0


# ---------------------------------------------------------------- loss: what a down would drop

def _tables(conn):
    """{table: {"rows": N, "columns": {column: (values, non_default)}}} of the user's tables."""
    out = {}
    for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                             "AND name != 'schema_migrations'").fetchall():
        q = '"%s"' % t.replace('"', '""')
        cols = {}
        for _cid, c, _type, _notnull, dflt, _pk in conn.execute("PRAGMA table_info(%s)" % q).fetchall():
            qc = '"%s"' % c.replace('"', '""')
            values = conn.execute("SELECT COUNT(*) FROM %s WHERE %s IS NOT NULL" % (q, qc)).fetchone()[0]
            # a value equal to the column's default loses nothing when the column goes
            other = conn.execute("SELECT COUNT(*) FROM %s WHERE %s IS NOT NULL AND %s IS NOT (%s)" % (q, qc, qc, dflt)).fetchone()[0] \
                if dflt is not None else values
            cols[c] = (values, other)
        out[t] = {"rows": conn.execute("SELECT COUNT(*) FROM %s" % q).fetchone()[0], "columns": cols}
    return out


def _lost(before, after):
    """What went from BEFORE to AFTER: tables (with their rows), columns (with their values that are
    not the default) and rows of tables that stay."""
    lost = []
    for t, b in sorted(before.items()):
        a = after.get(t)
        if a is None:
            lost.append({"table": t, "rows": b["rows"]})
            continue
        for c, (values, other) in sorted(b["columns"].items()):
            if c not in a["columns"]:
                lost.append({"table": t, "column": c, "values": values, "nonDefault": other})
        if a["rows"] < b["rows"]:
            lost.append({"table": t, "rowsDeleted": b["rows"] - a["rows"]})
    return lost


def cmd_loss(args):
    """What `down --to N` would drop, found by running its down migrations on a copy of the
    database (a temporary file beside the backups, removed after): per migration, the tables and
    columns that go and the rows that go with them. The database itself is only read."""
    migrations = load_migrations(args.dir)
    check_files(args.db)
    result = {"to": args.to, "downs": []}
    if not os.path.exists(args.db):
        print(json.dumps(result))
        return 0
    src = sqlite3.connect(args.db, isolation_level=None, timeout=5)
    bdir = Path(args.backup_dir)
    bdir.mkdir(mode=0o770, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".loss-", suffix=".sqlite3", dir=bdir)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(conn)
            src.close()
            applied = read_applied(conn)
            problems = find_problems(migrations, applied)
            if problems:
                raise Exit(EXIT_REFUSED, "cannot tell what a rollback of {} drops:\n  {}".format(args.db, "\n  ".join(problems)))
            result["from"] = current_version(applied)
            state = _tables(conn)
            for m in [m for m in reversed(migrations) if m.version in applied and m.version > args.to]:
                run_in_transaction(conn, m.down_path, m.down_path.read_bytes(),
                                   lambda c, v=m.version: c.execute("DELETE FROM schema_migrations WHERE version = ?", (v,)))
                now = _tables(conn)
                result["downs"].append({"version": m.version, "name": m.name, "lost": _lost(state, now)})
                state = now
        finally:
            conn.close()
    finally:
        for p in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
    print(json.dumps(result))
    return 0


def load_beside(name):
    """A module from beside this file (-I leaves this folder off sys.path, so by its path)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name(name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_postgres(args):
    """The command on the PostgreSQL database whose URL is stdin's first line."""
    pg = load_beside("migrate_pg")
    if args.command == "check":
        return cmd_check(args)
    try:
        conn = pg.parse_url(sys.stdin.readline().strip())
    except pg.UrlError as e:
        raise Exit(EXIT_INVALID, str(e))
    commands = {"status": pg.cmd_status, "up": pg.cmd_up, "down": pg.cmd_down, "loss": pg.cmd_loss, "dump": pg.cmd_dump}
    try:
        return commands[args.command](sys.modules[__name__], args, conn)
    except pg.SessionError as e:   # a query of ours failed, or the connection went
        raise Exit(EXIT_FAILED, f"the PostgreSQL database {pg.label(conn)} (DATABASE_URL): {e}")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Apply SQLite or PostgreSQL migrations safely.")
    p.add_argument("--db", help="SQLite database file (not needed for check)")
    p.add_argument("--url-stdin", action="store_true", help="PostgreSQL: the database's URL is the first line of stdin")
    p.add_argument("--dir", help="migrations directory (not needed for dump)")
    p.add_argument("--backup-dir", help="where backups go (default: <db dir>/backups)")
    p.add_argument("--keep", type=int, default=10, help="backups to keep (default 10)")
    p.add_argument("--keep-bytes", type=int, default=0,
                   help="disk budget of all kept backups in bytes (default 0: half of the free space plus the kept backups)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="validate the migrations directory")
    sub.add_parser("status", help="show applied and pending migrations")
    up = sub.add_parser("up", help="apply all pending migrations")
    down = sub.add_parser("down", help="revert migrations above --to")
    down.add_argument("--to", type=int, required=True, help="target version")
    for cmd in (up, down):   # the agent made the replica's restore point the undo (backup.beforeChange: replica)
        cmd.add_argument("--no-copy", action="store_true", help="no backup copy (the kept ones are still pruned to the budget)")
    loss = sub.add_parser("loss", help="what down --to N would drop (run on a copy; one JSON line)")
    loss.add_argument("--to", type=int, required=True, help="target version")
    dump = sub.add_parser("dump", help="PostgreSQL: a pg_dump restore point into --backup-dir (one JSON line)")
    dump.add_argument("--into", help="a new folder in --backup-dir for it (the pre-release backup's)")
    args = p.parse_args(argv)
    if args.command != "dump" and not args.dir:
        p.error(f"--dir is required for {args.command}")
    if args.command != "check" and not args.db and not args.url_stdin:
        p.error(f"--db or --url-stdin is required for {args.command}")
    if args.db and args.url_stdin:
        p.error("--db (SQLite) and --url-stdin (PostgreSQL) exclude each other")
    if args.command == "dump" and not args.url_stdin:
        p.error("dump is for PostgreSQL (--url-stdin)")
    if args.url_stdin and not args.backup_dir and args.command not in ("check", "status"):
        p.error(f"--backup-dir is required for {args.command} with --url-stdin")
    if args.keep < 1:
        p.error("--keep must be at least 1")
    if args.keep_bytes < 0:
        p.error("--keep-bytes must be 0 (the default budget) or more")
    if args.db and not args.backup_dir:
        args.backup_dir = str(Path(args.db).resolve().parent / "backups")
    return args


def main(argv=None):
    args = parse_args(argv)
    commands = {"check": cmd_check, "status": cmd_status, "up": cmd_up, "down": cmd_down, "loss": cmd_loss}
    try:
        return run_postgres(args) if args.url_stdin else commands[args.command](args)
    except Exit as e:
        log(f"migrate: {e}")
        return e.code
    except (OSError, sqlite3.Error) as e:  # unreadable file, corrupt DB, disk full...
        log(f"migrate: {args.command} failed: {e}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
