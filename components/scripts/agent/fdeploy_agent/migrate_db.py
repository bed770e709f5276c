"""Which database the schema step migrates: PostgreSQL when the app's environment file sets
DATABASE_URL to a postgresql:// URL (the `database` setting writes it; `env`/`secrets` may too),
else the SQLite file as always. The URL is the one the release will run with: the staged file
(env.desired) for an up before the switch, the file in force for a rollback's down after it. It
goes to migrate.py on stdin, never on a command line."""
import json
import os
import re
from typing import Callable, Optional

from . import apt
from . import app as apps
from .errors import AgentError
from .fsutil import read_regular
from .host import Host

POSTGRES = re.compile(r"^postgres(ql)?(\+[a-z0-9]+)?://", re.I)


def env_value(text: str, key: str) -> Optional[str]:
    """KEY's value in an environment file as environment.ts's envLine writes it (KEY="value", with
    \\\\ and \\" escaped; a bare KEY=value too); the last line wins, as with systemd."""
    found = None
    for line in text.splitlines():
        m = re.match(r'^\s*%s=(?:"((?:[^"\\]|\\.)*)"|(.*))\s*$' % re.escape(key), line)
        if m:
            found = re.sub(r"\\(.)", r"\1", m.group(1)) if m.group(1) is not None else m.group(2).strip()
    return found


def postgres_url(host: Host, app: apps.App, staged: bool) -> Optional[str]:
    """The app's PostgreSQL URL (None: it runs on SQLite)."""
    names = ["env.desired", "env"] if staged else ["env"]
    for name in names:
        data = read_regular(host.path("%s/%s" % (app.config_dir, name)))
        if data is not None:
            url = env_value(data.decode("utf-8", "replace"), "DATABASE_URL")
            return url if url and POSTGRES.match(url) else None
    return None


def ensure_client(host: Host, log: Callable[[str], None]) -> None:
    """psql and pg_dump (postgresql-client), installed once."""
    apt.install_missing(host, "pg_dump", ["postgresql-client"], log)


DUMP_LIMIT = 1800   # seconds a pre-release pg_dump may take


def dump_before_release(host: Host, app: apps.App, user: str, dest: str, keep_bytes: int, log: Callable[[str], None]) -> Optional[str]:
    """On PostgreSQL, the restore point before the release commands: migrate.py dump as USER (the new
    release's slot user) into DEST (shared/backups/pre-release-…, budgeted with the other backups);
    the dump's path, None for an app on SQLite. AgentError before any release command runs if it fails."""
    url = postgres_url(host, app, staged=True)
    if url is None:
        return None
    ensure_client(host, log)
    from .migrate_step import install_runner   # (migrate_step imports this module)
    install_runner(host, app)
    argv = ["runuser", "-u", user, "--", "timeout", "-k", "10", str(DUMP_LIMIT), "python3", "-I", "-B", "%s/migrations/migrate.py" % app.root,
            "--url-stdin", "--backup-dir", "%s/shared/backups" % app.root, "--keep-bytes", str(keep_bytes), "dump", "--into", os.path.basename(dest)]
    r = host.run(argv, input=url + "\n", umask=0o007)
    for line in (r.stderr or "").splitlines():
        log(line)
    try:
        path = json.loads((r.stdout or "").strip().splitlines()[-1])["dump"] if r.returncode == 0 else None
    except (ValueError, IndexError, KeyError, TypeError):
        path = None
    if not isinstance(path, str):
        last = ((r.stderr or "").strip().splitlines() or ["(no output)"])[-1]
        raise AgentError("the pg_dump of the app's PostgreSQL database (flask-deploy:database) before the release commands failed (exit %d)\n"
                         "No release command ran; the live release keeps serving.\n%s" % (r.returncode, last))
    return path


def restore_hint(app: apps.App, dump: str) -> str:
    return (" The PostgreSQL database was dumped first to %s: to restore it, stop the app (systemctl stop 'fdeploy-%s@*.service'),"
            " run pg_restore --clean --if-exists --no-owner -d \"$DATABASE_URL\" %s as a user that can read it, and deploy again." % (dump, app.name, dump))
