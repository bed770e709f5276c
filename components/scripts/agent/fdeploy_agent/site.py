"""The app's nginx site (nginx.sh, tls.sh): /etc/nginx/sites-available/fdeploy-<app>.conf, enabled
by a link in sites-enabled. The agent writes the files; bash runs `nginx -t` and reloads (glue). The
site in force before a change is recorded first (/etc/fdeploy/<app>/site.saved.json, root-only), so
that a site nginx rejects, or a certificate the CA refuses, puts exactly that one back.
  site-put      params APP, SITE (the server block): what is in force recorded, SITE in its place;
                {"changed"} (false: nothing to test or reload)
  site-stage    the same, and SITE kept as the stack's wanted site (site.desired: state-read's drift
                check and repair) (nginx.sh)
  site-restore  params APP: the recorded site back in force (or none, if there was none):
                {"restored": "site" | "none" | ""}
  site-saved-drop  params APP: the record goes (the change stays)
"""
import json
import os
import secrets
from typing import Any, Callable, Dict, Optional

from . import app as apps
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host

Log = Callable[[str], None]


def available(app: str) -> str:
    return "/etc/nginx/sites-available/fdeploy-%s.conf" % app


def enabled(app: str) -> str:
    return "/etc/nginx/sites-enabled/fdeploy-%s.conf" % app


def saved_path(app: str) -> str:
    return "/etc/fdeploy/%s/site.saved.json" % app


def in_force(host: Host, app: str) -> Optional[str]:
    """The site nginx loads for the app (None: not enabled)."""
    text = read_regular(host.path(available(app)))
    if text is None or not os.path.islink(host.path(enabled(app))):
        return None
    return text.decode(errors="replace")


def link(host: Host, app: str) -> bool:
    """sites-enabled links the site (one rename: never missing); True when it changed."""
    dest = host.path(enabled(app))
    if os.path.islink(dest) and os.readlink(dest) == available(app):
        return False
    tmp = "%s.tmp-%s" % (dest, secrets.token_hex(4))
    os.symlink(available(app), tmp)
    os.replace(tmp, dest)
    return True


def unlink(host: Host, *paths: str) -> None:
    for p in paths:
        if os.path.lexists(host.path(p)):
            os.unlink(host.path(p))


def put(host: Host, app: str, site: str, save: bool, desired: bool) -> bool:
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path("/etc/fdeploy/" + app), 0o700)
    if desired:
        write_atomic(host.path("/etc/fdeploy/%s/site.desired" % app), (site + "\n").encode(), 0o600)
    if save:
        write_atomic(host.path(saved_path(app)), json.dumps({"site": in_force(host, app)}).encode(), 0o600)
    changed = write_atomic(host.path(available(app)), (site + "\n").encode(), 0o644)
    return link(host, app) or changed


def restore(host: Host, app: str) -> str:
    raw = read_regular(host.path(saved_path(app)))
    if raw is None:
        return ""
    previous = json.loads(raw).get("site")
    if previous is None:
        unlink(host, enabled(app), available(app))
        what = "none"
    else:
        write_atomic(host.path(available(app)), previous.encode(), 0o644)
        link(host, app)
        what = "site"
    unlink(host, saved_path(app))
    return what


def _site(host: Host, params: Dict[str, Any], desired: bool) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP"))).name
    site = params.get("SITE")
    if not isinstance(site, str) or not site.strip() or "\0" in site:
        raise AgentError("SITE must be the site's nginx configuration (components/nginx-site.ts)")
    return {"changed": put(host, app, site, save=True, desired=desired)}


def site_put(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    return _site(host, params, False)


def site_stage(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    return _site(host, params, True)


def site_restore(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    return {"restored": restore(host, apps.check_name(params.get("APP")))}


def site_saved_drop(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    unlink(host, saved_path(apps.check_name(params.get("APP"))))
    return {}
