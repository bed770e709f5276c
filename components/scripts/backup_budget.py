"""The pre-change backups' budget and copy (stdlib only, imports nothing of the agent): migrate.py
loads it from beside itself, prerelease_backup.py gets it in its -c text (the slot user cannot read
the bundle). Both kinds live in shared/backups/: `<db>-<time>-v<N>.sqlite3` (before a migration) and
`pre-release-<time>-<release>/` (before the release commands); on PostgreSQL `<db>-<time>-v<N>.pgdump`
(migrate_pg.py's pg_dump, before a migration; a pre-release folder holds one too). They are kept by count (per kind, by
the caller) and by a disk budget (both kinds together): flask-deploy:keepBackupsBytes, by default half
the space they could use (free space plus what they take): a copy that fits the disk always fits it.
Before a copy, the oldest backups go until the budget holds; a copy that cannot fit even then is
refused before anything changes, with the numbers."""
import os
import re
import shutil
import sqlite3
import stat
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

DEFAULT_SHARE = 50   # percent of the space the backups could use
STAMP = r"(\d{8}T\d{6})\d*Z"
NAMES = (re.compile(r"^.+-%s-v\d+\.(?:sqlite3|pgdump)$" % STAMP), re.compile(r"^pre-release-%s-[0-9a-f]{12}$" % STAMP))
FIX = ("raise flask-deploy:keepBackupsBytes, free disk space on the server, or lower flask-deploy:keepBackups"
       " (fewer copies kept)")


class Kept(NamedTuple):
    name: str
    size: int


class NoRoom(Exception):
    pass


def human(n: int) -> str:
    for unit, f in (("GB", 10 ** 9), ("MB", 10 ** 6), ("kB", 10 ** 3)):
        if n >= f:
            return "%.1f %s" % (n / f, unit)
    return "%d bytes" % n


def _size(path: str, st: os.stat_result) -> int:
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for d, _, names in os.walk(path):   # never follows a symlink
        for n in names:
            s = os.lstat(os.path.join(d, n))
            total += s.st_size if stat.S_ISREG(s.st_mode) else 0
    return total


def kept(backups: str) -> List[Kept]:
    """The backups in BACKUPS, oldest first (both kinds; a symlink or a stranger's name is not one)."""
    try:
        names = os.listdir(backups)
    except FileNotFoundError:
        return []
    found: List[Tuple[str, Kept]] = []
    for name in names:
        m = NAMES[0].match(name) or NAMES[1].match(name)
        if not m:
            continue
        st = os.lstat(os.path.join(backups, name))
        if stat.S_ISREG(st.st_mode) or (stat.S_ISDIR(st.st_mode) and name.startswith("pre-release-")):
            found.append((m.group(1) + name, Kept(name, _size(os.path.join(backups, name), st))))
    return [k for _, k in sorted(found)]


def plan(old: List[Kept], need: int, free: int, budget: int, what: str, unchanged: str) -> Tuple[List[str], int, Optional[str]]:
    """What goes (oldest first), the budget in force, and the refusal (None: the copy of NEED bytes fits;
    WHAT names the copy, UNCHANGED what the refusal leaves as it was).
    Backups over the budget go whatever is decided (a deploy is never refused for what an earlier
    version kept); more go only to make room for a copy that then fits: within the budget, and
    leaving the database's size free after it (room for the change's own journal)."""
    total = sum(k.size for k in old)
    room = free + total   # if every kept backup went
    given, budget = budget, budget or room * DEFAULT_SHARE // 100
    drop = 0
    while drop < len(old) and total > budget:
        total -= old[drop].size
        drop += 1
    if need > budget or 2 * need > room:
        return [k.name for k in old[:drop]], budget, (
            "%s needs %s, which does not fit: the budget for kept backups is %s (%s), the disk has %s free (%s if every kept"
            " backup went) and the copy must leave as much free again; %s: %s"
            % (what, human(need), human(budget), "flask-deploy:keepBackupsBytes" if given else
               "flask-deploy:keepBackupsBytes unset: half of the free space plus the kept backups", human(free), human(room), unchanged, FIX))
    freed = room - free - total
    while drop < len(old) and (total + need > budget or 2 * need > free + freed):
        total -= old[drop].size
        freed += old[drop].size
        drop += 1
    return [k.name for k in old[:drop]], budget, None


def remove(backups: str, name: str) -> None:
    p = os.path.join(backups, name)
    if stat.S_ISDIR(os.lstat(p).st_mode):
        shutil.rmtree(p)
    else:
        os.unlink(p)


def make_room(backups: str, need: int, budget: int, what: str, unchanged: str, log: Callable[[str], None]) -> None:
    """Prunes by the budget (each one logged), then raises NoRoom with the numbers if NEED cannot fit."""
    os.makedirs(backups, mode=0o770, exist_ok=True)
    old = kept(backups)
    vfs = os.statvfs(backups)
    names, budget, refusal = plan(old, need, vfs.f_bavail * vfs.f_frsize, budget, what, unchanged)
    for name in names:
        remove(backups, name)
        log("backup: removed %s (oldest first: the kept backups stay within the budget of %s, flask-deploy:keepBackupsBytes)"
            % (name, human(budget)))
    if refusal:
        raise NoRoom(refusal)


def size_of(conn: sqlite3.Connection) -> int:
    """What a backup of CONN's main database takes: its pages (the WAL's committed ones included)."""
    return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]


class _Restarted(Exception):
    pass


def copy(src: sqlite3.Connection, dst: sqlite3.Connection, label: str, log: Callable[[str], None],
         step_bytes: int = 64 << 20, every: float = 5.0) -> None:
    """SRC into DST by the backup API in steps of STEP_BYTES (a writer waits at most one step), logging
    progress every 10% or EVERY seconds for a copy of more than one step. The API restarts the copy when
    another connection writes between steps: after the third restart the rest goes in one step."""
    page = src.execute("PRAGMA page_size").fetchone()[0]
    pages = max(1, step_bytes // page)
    seen = {"left": None, "restarts": 0, "pct": 0, "at": time.monotonic()}

    def progress(status: int, remaining: int, total: int) -> None:
        if seen["left"] is not None and remaining > seen["left"]:
            seen["restarts"] += 1
            if seen["restarts"] >= 3:
                raise _Restarted()
        seen["left"] = remaining
        if total <= pages or not remaining:
            return
        pct = (total - remaining) * 100 // total
        if pct // 10 > seen["pct"] // 10 or time.monotonic() - seen["at"] >= every:
            seen["pct"], seen["at"] = pct, time.monotonic()
            log("backup: %s %d%% (%s of %s)" % (label, pct, human((total - remaining) * page), human(total * page)))
    try:
        src.backup(dst, pages=pages, progress=progress)
    except _Restarted:
        log("backup: %s is written to while it is copied: the rest in one step" % label)
        src.backup(dst)
