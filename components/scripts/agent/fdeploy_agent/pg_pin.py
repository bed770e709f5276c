"""The app server's pin of its managed PostgreSQL server's certificate (pg-pin): the database
server's self-signed certificate (pg-install's result) as the CA file its DATABASE_URL names
(sslmode=verify-full&sslrootcert=…), so the app, its release commands and the migration runner
(psql, as root) connect only to the server holding that certificate's key.

/etc/fdeploy/<app>.pg-root.crt: root-owned, 0644 in the root-owned /etc/fdeploy (a certificate is
public; the app user reads it, and cannot replace it)."""
import base64
import binascii
import os
import re
from typing import Any, Callable, Dict, List

from . import app as apps
from . import lease
from .errors import AgentError
from .fsutil import own_dir, write_atomic
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=\n]+)-----END CERTIFICATE-----\n?")


def pin_path(app: str) -> str:
    """The CA file of APP's DATABASE_URL (components/config/database.ts pinPath: the same)."""
    return "/etc/fdeploy/%s.pg-root.crt" % apps.check_name(app)


def check_certificate(text: object) -> bytes:
    """One PEM certificate (what pg-install returns), else a clear error."""
    m = PEM.fullmatch(text) if isinstance(text, str) else None
    if m:
        try:
            if base64.b64decode("".join(m.group(1).split()), validate=True):
                return m.group(0).rstrip("\n").encode() + b"\n"
        except (binascii.Error, ValueError):
            pass
    raise AgentError("CERT: expected the database server's certificate in PEM (pg-install's result); "
                     "run pulumi up again to read it from flask-deploy:database.host")


def pg_pin(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params: APP, CERT (PEM). Writes the app's CA file; a re-run with the same certificate changes nothing."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    pem = check_certificate(params.get("CERT"))
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        own_dir(host.path("/etc/fdeploy"), 0o755)
        path = pin_path(app.name)
        changed = write_atomic(host.path(path), pem, 0o644)
        if changed:
            log("pinned the database server's certificate in %s" % path)
        return {"ok": True, "changed": changed, "path": path}


def mount_args(host: Host, app: str) -> List[str]:
    """runtime docker (release commands): the pinned CA file read-only at its own path in the app's
    containers (their DATABASE_URL names it); [] when the app pins none."""
    path = pin_path(app)
    if not os.path.isfile(host.path(path)):
        return []
    return _mount(path)


def unit_mount_args(host: Host, app: str, pin: object) -> List[str]:
    """runtime docker's unit (unit-stage): the CA file the stack pins, params PG_PIN (components/gunicorn.ts),
    mounted by that parameter, not by what is on disk now: the step's inputs change when pinning starts or
    stops, so the unit is staged again then. None/"": the stack pins nothing."""
    if pin in (None, ""):
        return []
    path = pin_path(app)
    if pin != path:
        raise AgentError("bad PG_PIN %r: expected %s (the CA file of flask-deploy:database.host's certificate)" % (pin, path))
    if not os.path.isfile(host.path(path)):
        raise AgentError("the database server's pinned certificate %s is missing (the app's database pin step writes it): "
                         "run pulumi up again" % path)
    return _mount(path)


def _mount(path: str) -> List[str]:
    return ["--mount", "type=bind,source=%s,target=%s,readonly" % (path, path)]
