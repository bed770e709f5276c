"""The app's state on this server: one root-only JSON file, /etc/fdeploy/<app>/state.json (0600 in
the 0700 folder), with a schema version, written atomically. A server deployed before the file
existed gets one on the first verb that needs it (upgrade in place: today's files stay valid).

    {"schema": 1,
     "key": "<hex>",                       revisions of staged settings are HMACs under it: they
                                           change with the content, yet say nothing about a secret
     "staged": {"env":  {"revision": …},   what the last deploy staged (not in force until the
                "unit": {"revision": …,    switch puts it there: slots.py settings_from)
                         "gunicornArgs": […]}},
     "preflight": {"release", "env", "unit", "passed"}   the deploy's preflight that passed (preflight.py)
     "live": {"release", "strategy", "scripts", "at"}}    what the last switch put live (live.py)
"""
import hashlib
import hmac
import json
import secrets
from typing import Any, Dict

from .app import App
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host

SCHEMA = 1


def path_of(host: Host, app: App) -> str:
    return host.path(app.config_dir + "/state.json")


def load(host: Host, app: App) -> Dict[str, Any]:
    raw = read_regular(path_of(host, app))
    if raw is None:
        return {"schema": SCHEMA, "key": secrets.token_hex(32), "staged": {}}
    try:
        state = json.loads(raw)
        schema = state["schema"]
    except (ValueError, KeyError, TypeError):
        raise AgentError("%s is damaged (not the agent's JSON); move it away and deploy again" % (app.config_dir + "/state.json"))
    if not isinstance(schema, int) or schema > SCHEMA:
        raise AgentError("%s has schema %r, newer than this flask-deploy (%d): deploy with the version that wrote it, or newer"
                         % (app.config_dir + "/state.json", schema, SCHEMA))
    state.setdefault("staged", {})
    return state


def save(host: Host, app: App, state: Dict[str, Any]) -> None:
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path(app.config_dir), 0o700)
    write_atomic(path_of(host, app), (json.dumps(state, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def revision(state: Dict[str, Any], content: bytes) -> str:
    """A revision of CONTENT: equal for equal content, and no hash of a secret an offline guess could check."""
    return hmac.new(bytes.fromhex(state["key"]), content, hashlib.sha256).hexdigest()[:16]
