"""Maintenance mode at the balancer (README "Scale out"): with several app servers, `fdeploy maintenance`
puts the 503 page in one place, HAProxy, instead of on each host. The page is a root-only file beside the
app's part of haproxy.cfg; while it exists the app's backend answers every request with it (HAProxy reads
it when it loads the config, as root), and every deploy's lb-configure keeps it. HAProxy's own checks of
the hosts and the rollout's probes go straight to the hosts, so deploys work during maintenance.
  lb-maintenance  APP, MODE on|off, MESSAGE or HTML (on)"""
import json
import os
import re
import time
from typing import Any, Callable, Dict, Optional

from . import haproxy
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .haproxy_config import maintenance_page
from .haproxy_reload import config_lock
from .host import Host
from .ops import TIME, maintenance_page as page_bytes

Log = Callable[[str], None]
# HAProxy sends the page from one buffer (tune.bufsize 16384, less its headers and rewrite reserve)
MAX_PAGE = 12 * 1024


def state(host: Host, app: str) -> Dict[str, Any]:
    """{"on": False}, or {"on": True, "since": …, "by": …} for APP at this balancer."""
    if not os.path.isfile(host.path(maintenance_page(app))):
        return {"on": False}
    try:
        st = json.loads(read_regular(host.path(maintenance_page(app) + ".state")) or b"{}")
    except ValueError:
        st = {}
    return {"on": True, "since": st.get("since"), "by": st.get("by")}


def no_part(app: str) -> AgentError:
    return AgentError("app %s has no part on this balancer (/etc/fdeploy/haproxy/%s.json): pulumi up deploys it" % (app, app))


def lb_maintenance(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[haproxy.Api] = None) -> Dict[str, Any]:
    app = haproxy._target(params)
    if not os.path.isdir(host.path(haproxy.FRAGMENTS)):
        raise no_part(app)
    with config_lock(host, lock_wait, log):   # the page and the config it goes in: one change at a time
        return _maintenance(host, app, params, log, api or haproxy.runtime_api)


def _maintenance(host: Host, app: str, params: Dict[str, Any], log: Log, api: haproxy.Api) -> Dict[str, Any]:
    if not any(f.get("APP") == app for f in haproxy.fragments(host)):
        raise no_part(app)
    mode = params.get("MODE")
    if mode not in ("on", "off"):
        raise AgentError("bad maintenance mode %r (MODE: on or off)" % (mode,))
    page_path = host.path(maintenance_page(app))
    state_path = page_path + ".state"
    old_page, old_state = read_regular(page_path), read_regular(state_path)
    if mode == "on":
        message, html = params.get("MESSAGE") or "", params.get("HTML") or ""
        if not isinstance(message, str) or not isinstance(html, str):
            raise AgentError("MESSAGE and HTML: expected text")
        page = page_bytes(message, html)
        if len(page) > MAX_PAGE:
            raise AgentError("--html: the page is %d bytes; the balancer sends at most %d (HAProxy's buffer): a smaller page" % (len(page), MAX_PAGE))
        write_atomic(page_path, page, 0o600)
        if old_state is None:
            by = os.environ.get("SUDO_USER") or os.environ.get("USER") or "root"
            write_atomic(state_path, json.dumps({"since": time.strftime(TIME, time.gmtime()), "by": re.sub(r"\s", "_", by)}).encode(), 0o600)
        else:
            log("maintenance mode is already on (page updated)")
    else:
        for p in (page_path, state_path):
            if os.path.exists(p):
                os.unlink(p)

    def restore() -> None:
        for p, old in ((page_path, old_page), (state_path, old_state)):
            if old is not None:
                write_atomic(p, old, 0o600)
            elif os.path.exists(p):
                os.unlink(p)

    haproxy.apply(host, log, restore, api=api)
    return {"mode": mode, "changed": (old_page is None) == (mode == "on"),
            "message": "maintenance %s at the balancer (every host of %s)" % (mode, app)}
