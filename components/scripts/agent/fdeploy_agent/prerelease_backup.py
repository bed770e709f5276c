"""The online backup before the release commands (release-commands.sh): every SQLite database in
shared/ (not backups/) by SQLite's backup API, into DEST; the oldest pre-release backups beyond
KEEP go. It runs as the new release's slot user, never root (root follows no path in shared/): the
agent starts it as `python3 -I -B -c <backup_budget.py, then this file> SHARED DEST KEEP KEEP_BYTES [SKIP]`
(SKIP: a JSON list of paths in shared/ not to copy: backup.beforeChange replica, replica_undo.py)
under runuser and timeout, so it imports nothing of the agent. The kept backups are pruned to their
disk budget first, and a copy that would not fit is refused with the numbers before anything is
copied (backup_budget.py); the copy goes in steps, with progress on stderr. Nothing the app put
there can hang it: each file's type is checked before it is opened (a FIFO, socket or device is refused, naming it; a symlink is not backed up),
opened O_NONBLOCK|O_NOFOLLOW and checked again. Prints {"saved": databases, "bytes", "seconds"}."""
import errno
import json
import os
import shutil
import sqlite3
import stat
import sys
import time
from typing import Any, Dict, List, Optional


def load_budget() -> Any:
    """backup_budget: the -c text defines it first; within the agent it is <bundle>/backup_budget.py,
    loaded only when used (the copy of the agent backup-deploy installs has no bundle beside it)."""
    if "backup_budget" not in sys.modules:
        import importlib.util
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "backup_budget.py")
        spec = importlib.util.spec_from_file_location("backup_budget", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["backup_budget"] = mod
    return sys.modules["backup_budget"]

KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}
SUFFIXES = (".sqlite", ".sqlite3", ".db")


class Refused(Exception):
    pass


def refuse(shared: str, p: str, mode: int) -> None:
    path = os.path.relpath(p, os.path.dirname(shared))
    raise Refused("%s is %s, not a regular file: remove it (as the app user) and deploy again"
                  % (path, KIND.get(stat.S_IFMT(mode), "not a regular file")))


def header(shared: str, p: str) -> Optional[bytes]:
    """The first 16 bytes of the regular file P; None for a symlink or no file (never blocks)."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        refuse(shared, p, st.st_mode)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOENT):   # swapped meanwhile
            return None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            refuse(shared, p, st.st_mode)
        return fh.read(16)


def databases(shared: str) -> List[str]:
    """Every SQLite database in SHARED (not backups/), all checked first: a refusal leaves no partial backup."""
    dbs = []
    for d, dirs, names in os.walk(shared):
        if d == shared and "backups" in dirs:
            dirs.remove("backups")
        for name in sorted(names):
            p = os.path.join(d, name)
            if not name.endswith(SUFFIXES) or header(shared, p) != b"SQLite format 3\x00":
                continue
            for side in ("-wal", "-shm", "-journal"):   # SQLite opens these too
                try:
                    st = os.lstat(p + side)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    refuse(shared, p + side, st.st_mode)
            dbs.append(p)
    return dbs


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def backup(shared: str, dest: str, keep: int, keep_bytes: int = 0, skip: "tuple[str, ...]" = ()) -> Dict[str, Any]:
    """SKIP: paths relative to SHARED whose undo is the replica's restore point (not copied)."""
    budget = load_budget()
    dbs = [p for p in databases(shared) if os.path.relpath(p, shared) not in skip]
    sources = [sqlite3.connect("file:%s?mode=ro" % p, uri=True) for p in dbs]
    try:
        need = sum(budget.size_of(c) for c in sources)
        try:
            budget.make_room(os.path.join(shared, "backups"), need, keep_bytes,
                             "the backup of %d database(s) in shared/ before the release commands" % len(dbs),
                             "no release command ran, the live release keeps serving", log)
        except budget.NoRoom as e:
            raise Refused(str(e))
        start = time.monotonic()
        for p, src in zip(dbs, sources):
            out = os.path.join(dest, os.path.relpath(p, shared))
            os.makedirs(os.path.dirname(out), mode=0o770, exist_ok=True)
            dst = sqlite3.connect(out)
            try:
                budget.copy(src, dst, os.path.relpath(p, shared), log)
            finally:
                dst.close()
    finally:
        for c in sources:
            c.close()
    prune(os.path.join(shared, "backups"), keep)
    return {"saved": len(dbs), "bytes": need, "seconds": round(time.monotonic() - start, 1) if dbs else 0}


def prune(backups: str, keep: int) -> None:
    """The pre-release backups beyond the newest KEEP go (their names sort by time); KEEP 0 keeps all, as before."""
    try:
        old = sorted(e for e in os.listdir(backups) if e.startswith("pre-release-"))
    except FileNotFoundError:
        return
    for e in old[:-keep] if keep else []:
        shutil.rmtree(os.path.join(backups, e), ignore_errors=True)


def main(argv: List[str]) -> int:
    os.umask(0o007)   # what it creates in shared/ is the app's group's (the slot users share it)
    os.chdir("/")
    try:
        print(json.dumps(backup(argv[0], argv[1], int(argv[2]), int(argv[3]), tuple(json.loads(argv[4])) if len(argv) > 4 else ())))
    except Refused as e:
        print(e, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
