"""rollback-loss: what a rollback to schema version TO would drop (fdeploy rollback asks before it
runs one that loses data). migrate.py loss runs the down migrations of the set in force on a copy
of the database, as the app user (root never opens the app's database), and changes nothing
(on PostgreSQL: in a transaction rolled back)."""
import json
import os
from typing import Any, Callable, Dict

from . import app as apps
from . import migrate_db
from .errors import AgentError
from .host import Host


def rollback_loss(host: Host, params: Dict[str, Any], log: Callable[[str], None], lock_wait: int) -> Dict[str, Any]:
    """params APP, TO (the schema version the rollback goes down to): {"from", "to", "downs":
    [{"version", "name", "lost": [...]}] newest first, "backupDir"}."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    to = params.get("TO")
    if not isinstance(to, int) or isinstance(to, bool) or to < 0:
        raise AgentError("bad schema version %r (expected a whole number >= 0)" % (to,))
    backups = "%s/shared/backups" % app.root
    result = {"from": to, "to": to, "downs": [], "backupDir": backups}
    current = "%s/migrations/current" % app.root
    if not os.path.isdir(host.path(current)):   # no SQL migrations ever ran here (root-owned folders)
        return result
    url = migrate_db.postgres_url(host, app, staged=False)   # PostgreSQL: the downs in a transaction rolled back
    db = ["--url-stdin"] if url else ["--db", "%s/shared/db/app.sqlite3" % app.root]
    argv = ["runuser", "-u", app.user, "--", "python3", "-I", "%s/migrations/migrate.py" % app.root,
            *db, "--dir", current, "--backup-dir", backups, "loss", "--to", str(to)]
    r = host.run(argv, input=url + "\n") if url else host.run(argv)
    lines = (r.stdout or "").strip().splitlines()
    if r.returncode != 0 or not lines:
        raise AgentError("could not tell what the rollback's down migrations drop (migrate.py loss): %s" % ((r.stderr or r.stdout or "").strip().splitlines() or ["no output"])[-1])
    result.update(json.loads(lines[-1]))
    return result
