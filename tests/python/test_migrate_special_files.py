"""migrate.py refuses a database (or a file SQLite opens beside it) that is not a regular file.

The database lives in the app-writable shared/: a FIFO planted there would block SQLite's open
for good (holding the deploy lock), so the runner fails at once, naming the file.
"""
import os
import socket
import time

import pytest

from helpers import copy_real, query, run_migrate


def migrate_up(db, mdir, limit=20):
    t0 = time.monotonic()
    p = run_migrate("up", db=db, dir=copy_real(mdir))
    assert time.monotonic() - t0 < limit, "migrate.py waited on the special file"
    return p


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_fifo_is_refused_at_once(db, mdir, suffix):
    if suffix:
        assert migrate_up(db, mdir).returncode == 0   # a database, then a FIFO beside it
    os.mkfifo(f"{db}{suffix}")
    for command in ("up", "status"):
        t0 = time.monotonic()
        p = run_migrate(command, db=db, dir=copy_real(mdir))
        assert time.monotonic() - t0 < 20
        assert p.returncode == 1, p.stderr
        assert f"{db}{suffix} is a FIFO, not a regular file: remove it (as the app user) and deploy again" in p.stderr


def test_fifo_lock_file_is_refused(db, mdir):
    os.mkfifo(f"{db}.migrate.lock")
    p = migrate_up(db, mdir)
    assert p.returncode == 1
    assert f"{db}.migrate.lock is a FIFO, not a regular file" in p.stderr


def test_socket_and_symlink_are_refused(db, mdir, tmp_path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(db))
    try:
        p = migrate_up(db, mdir)
        assert p.returncode == 1 and f"{db} is a socket, not a regular file" in p.stderr
    finally:
        s.close()
        os.unlink(db)
    target = tmp_path / "elsewhere.sqlite3"
    os.symlink(target, db)
    p = migrate_up(db, mdir)
    assert p.returncode == 1 and f"{db} is a symlink, not a regular file" in p.stderr
    assert not target.exists(), "the symlink was followed"


def test_regular_database_still_migrates_after_removal(db, mdir):
    os.mkfifo(db)
    assert migrate_up(db, mdir).returncode == 1
    os.unlink(db)
    p = migrate_up(db, mdir)
    assert p.returncode == 0, p.stderr
    assert query(db, "SELECT max(version) FROM schema_migrations") == [(2,)]
