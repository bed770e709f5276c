"""The app's nginx site: /etc/nginx/sites-available/fdeploy-<app>.conf, enabled by a link in
sites-enabled. The site in force before a change is recorded first (/etc/fdeploy/<app>/site.saved.json,
root-only), so that a site nginx rejects, or a certificate the CA refuses, puts exactly that one back.
nginx itself runs through the Host seam: `nginx -t`, then a graceful reload.
  site-create   params APP, SITE (the server block; components/nginx-site.ts): SITE kept as the
                stack's wanted site (site.desired: the drift check and repair), tested with nginx -t
                and loaded; a rejected site puts the previous one back, the error saying whether the
                new site or another file of nginx's is at fault. {"changed", "revision"}
  site-delete   --app APP: the site, its maintenance snippet and upstream file go (destroy)
Inside them: _site(…, desired=True) puts SITE in place, kept as wanted, the one in force recorded (no
test, no reload); restore() puts the recorded site back in force ("site" | "none" | "");
site_saved_drop() (also server_state.py's repair) drops the record (the change stays).
"""
import hashlib
import json
import os
import secrets
from typing import Any, Callable, Dict, Optional

from . import app as apps
from . import lease
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .lock import deploy_lock

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


def site_saved_drop(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    unlink(host, saved_path(apps.check_name(params.get("APP"))))
    return {}


def upstream_conf(app: str) -> str:
    return "/etc/fdeploy/%s/upstream.conf" % app


def default_upstream(app: str) -> bytes:
    """All requests to the live slot (strategy canary's activation rewrites it per step)."""
    return ("# Managed by flask-deploy (activate.sh): all requests to the live slot\n"
            "server unix:/run/fdeploy-%s/live.sock;\n" % app).encode()


def log_file(host: Host, path: str) -> None:
    """PATH (an nginx log: client addresses, paths) exists, www-data:adm 0640, before nginx opens it."""
    if not os.path.lexists(host.path(path)):
        r = host.run(["install", "-m", "0640", "-o", "www-data", "-g", "adm", "/dev/null", path], merge_output=True)
        if r.returncode != 0:
            raise AgentError("could not create %s: %s" % (path, (r.stdout or "").strip()))
    elif not os.path.islink(host.path(path)):
        os.chmod(host.path(path), 0o640)


def prepare(host: Host, app: str) -> None:
    """What the site names exists, so that it passes nginx -t: its logs, strategy canary's upstream
    file (a site of another strategy ignores it) and upstream log."""
    for kind in ("access", "error"):
        log_file(host, "/var/log/nginx/fdeploy-%s.%s.log" % (app, kind))
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path("/etc/fdeploy/" + app), 0o700)
    if read_regular(host.path(upstream_conf(app))) is None:
        write_atomic(host.path(upstream_conf(app)), default_upstream(app), 0o644)
    if not os.path.lexists(host.path("/var/log/nginx/fdeploy-%s.upstream.log" % app)):
        log_file(host, "/var/log/nginx/fdeploy-%s.upstream.log" % app)


def test(host: Host) -> "tuple[bool, str]":
    """`nginx -t`: (passed, its output)."""
    r = host.run(["nginx", "-t"], merge_output=True)
    return r.returncode == 0, (r.stdout or "").rstrip()


def reload(host: Host) -> None:
    """A graceful reload (no connection dropped); nginx started when it is not running."""
    if host.run(["systemctl", "is-active", "--quiet", "nginx"]).returncode == 0:
        host.systemctl("reload", "nginx")
    else:
        host.systemctl("enable", "--now", "--quiet", "nginx")


def load_checked(host: Host, app: str, log: Log, rejected: str, put_back: Optional[Callable[[], None]] = None) -> None:
    """The site just put in place goes in force: tested, then loaded. A configuration nginx rejects
    is never left in force: the recorded site goes back (PUT_BACK: the caller's own way, e.g. with
    the previous certificate), nginx -t's output is logged and the error says whether the new site
    (REJECTED) or another file of nginx's is at fault."""
    prepare(host, app)
    ok, out = test(host)
    if ok:
        reload(host)
        return
    log(out)
    if put_back is not None:
        put_back()
        raise AgentError(rejected)
    restore(host, app)   # what nginx runs now: nothing to reload
    if test(host)[0]:
        raise AgentError(rejected)
    raise AgentError("nginx's configuration is invalid apart from this site (nginx -t above names the file); "
                     "the site was not changed and nginx keeps running its current config")


def revision(host: Host, app: str) -> str:
    return hashlib.sha256(read_regular(host.path(available(app))) or b"").hexdigest()[:16]


def site_create(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """The stack's site in force (NginxSite): unchanged, nothing is tested or reloaded."""
    app = apps.load(host, apps.check_name(params.get("APP"))).name
    with deploy_lock(host, app, lock_wait, log, deploy=lease.deploy_of(params)):
        changed = _site(host, params, True)["changed"]
        if changed:
            load_checked(host, app, log, "nginx rejected the new site config (nginx -t above); the previous config stays in force")
        unlink(host, saved_path(app))
        log("nginx site %s" % ("in force" if changed else "unchanged"))
        return {"changed": changed, "revision": revision(host, app)}


def site_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """destroy (or a FlaskApp without a site any more): the site, `fdeploy maintenance`'s snippet and
    strategy canary's upstream file go; nginx reloads when the rest of its configuration passes."""
    app = apps.check_name(params.get("APP"))
    unlink(host, enabled(app), available(app), "/etc/fdeploy/%s/maintenance.conf" % app, upstream_conf(app))
    if test(host)[0]:
        host.run(["systemctl", "reload", "nginx"])
    log("nginx site of %s removed" % app)
    return {}
