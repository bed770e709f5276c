"""Test helpers: run migrate.py as a subprocess against real SQLite files."""
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIGRATE = ROOT / "components" / "scripts" / "migrate.py"
REAL_MIGRATIONS = ROOT / "migrations"
APP_DIR = ROOT / "app"


def run_migrate(*args, db=None, dir=None, extra=()):
    """Run migrate.py; returns CompletedProcess (text mode)."""
    cmd = [sys.executable, str(MIGRATE)]
    if db is not None:
        cmd += ["--db", str(db)]
    if dir is not None:
        cmd += ["--dir", str(dir)]
    cmd += [*extra, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def last_line(proc):
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def query(db, sql, params=()):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def schema(db):
    return query(db, "SELECT type, name, sql FROM sqlite_master ORDER BY name")


def copy_real(dest, versions=(1, 2)):
    """Copy the project's real migrations with the given numbers into dest."""
    dest.mkdir(exist_ok=True)
    for f in REAL_MIGRATIONS.glob("*.sql"):
        if int(f.name[:4]) in versions:
            shutil.copy(f, dest / f.name)
    return dest


def app_root(tmp_path, *dirs):
    """A temporary server root with app shop's settings (/etc/fdeploy/shop.conf), its systemd folder
    and DIRS (relative folders) made."""
    (tmp_path / "etc/fdeploy").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    for d in ("etc/systemd/system", *dirs):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    return tmp_path
