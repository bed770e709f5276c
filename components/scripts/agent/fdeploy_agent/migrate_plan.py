"""The schema step's decisions (migrate.sh); the bash copies the upload and runs migrate.py as the
new release's slot user.
  migrate-plan  params APP, MIGRATIONS (migrations-<hash>), KEEP_BACKUPS, KEEP_BACKUPS_BYTES (optional):
                {"mode": "up", "dir", "copy" (the set is not on the server yet)}
                or APP, DOWN_TO_SCHEMA_OF (a release id), KEEP_BACKUPS (a rollback, after the
                switch): {"mode": "down", "dir" (the set in force), "schema" (the version that
                release last went live with)}, or {"mode": "none"} when no set was ever applied;
                each with "keep_bytes" (the backups' budget in bytes, 0: the default)
"""
import os
import re
from typing import Any, Dict

from . import app as apps, history
from .errors import AgentError
from .host import Host
from .release import check_id, server_link
from .release_commands import check_keep, check_keep_bytes


def plan(host: Host, app: apps.App, params: Dict[str, Any]) -> Dict[str, Any]:
    check_keep(params.get("KEEP_BACKUPS"))
    return dict(decide(host, app, params), keep_bytes=check_keep_bytes(params.get("KEEP_BACKUPS_BYTES")))


def decide(host: Host, app: apps.App, params: Dict[str, Any]) -> Dict[str, Any]:
    migrations = app.root + "/migrations"
    if params.get("DOWN_TO_SCHEMA_OF"):
        rid = check_id(params.get("DOWN_TO_SCHEMA_OF"))
        schema = history.schema_of(history.entries(host, app), rid)
        if schema is None:
            raise AgentError("the schema version of release %s is unknown (it never went live here): fdeploy releases lists those that did" % rid)
        current = server_link(host, migrations + "/current")
        if current is None or not os.path.isdir(host.path(current)):
            return {"mode": "none", "schema": 0}
        return {"mode": "down", "dir": migrations + "/current", "schema": schema}
    upload = params.get("MIGRATIONS")
    if not isinstance(upload, str) or not re.fullmatch(r"migrations-[0-9a-f]{12}", upload):
        raise AgentError("bad migrations upload %r" % (upload,))
    folder = "%s/%s" % (migrations, upload[len("migrations-"):])
    return {"mode": "up", "dir": folder, "copy": not os.path.isdir(host.path(folder))}


def migrate_plan(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    return plan(host, apps.load(host, apps.check_name(params.get("APP"))), params)
