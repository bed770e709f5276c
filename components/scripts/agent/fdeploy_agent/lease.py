"""One deploy at a time per app, across all its steps: the deploy lease. The flock (lock.py,
deploy_lock) serialises single steps; the lease keeps another stack's steps from
running between two steps of a deploy (one stack's staged env going live with another's release).
A step that names its deploy (DEPLOY, "<project>/<stack>", in every step's parameters) takes the
lease right after the flock, unless another deploy holds it, and renews it when it ends: the lease
lasts LEASE_SECONDS after a deploy's last step, so a crashed or finished deploy's lease runs out
on its own. Steps without DEPLOY (fdeploy commands, ServerState's read) take only the flock. On a fleet,
an fdeploy command that changes it holds every host's lease for its whole run as "<project>/<stack>/
fdeploy-<command>" (fleet_lease.py, fleet-hold): an up waits for it, and it for an up; a rollback hands
its lease over to its own up ("<project>/<stack>") before that up starts (end(), verb fleet-lease-end).
/run/fdeploy/<app>.lease, root's (0600), written only under the flock (and read outside it only for a message)."""
import json
import os
import re
import time
from typing import Any, Dict, Optional

from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .host import Host
from .lock import LOCK_DIR

DEPLOY = re.compile(r"[A-Za-z0-9._/-]{1,200}")
FDEPLOY = re.compile(r"(.+)/fdeploy-([a-z-]+)")   # the lease of an fdeploy command (fleet-hold)


def lease_seconds() -> int:
    v = os.environ.get("FDEPLOY_LEASE_SECONDS", "30")
    return int(v) if v.isdigit() else 30


def _path(host: Host, app: str) -> str:
    return host.path("%s/%s.lease" % (LOCK_DIR, app))


def _write(host: Host, app: str, deploy: str, now: float) -> None:
    """DEPLOY holds the lease for LEASE_SECONDS from NOW."""
    write_atomic(_path(host, app), json.dumps({"deploy": deploy, "expires": now + lease_seconds()}).encode(), 0o600)


def read(host: Host, app: str) -> Optional[Dict[str, Any]]:
    try:
        lease = json.loads(read_regular(_path(host, app)) or b"null")
    except ValueError:
        return None
    return lease if isinstance(lease, dict) and isinstance(lease.get("deploy"), str) else None


def holds(lease: Optional[Dict[str, Any]], now: float) -> bool:
    """LEASE (read()) has not run out at NOW."""
    return bool(lease) and float(lease.get("expires", 0)) > now


def deploy_of(params: Dict[str, Any]) -> str:
    deploy = params.get("DEPLOY") or ""
    if deploy and not (isinstance(deploy, str) and DEPLOY.fullmatch(deploy)):
        raise AgentError("bad deploy id %r (expected <project>/<stack>)" % (deploy,))
    return deploy


def take(host: Host, app: str, deploy: str, now: Optional[float] = None) -> Optional[Dict[str, Any]]:
    """Under the flock: the lease for DEPLOY (None), or the other deploy's lease that still holds."""
    now = time.time() if now is None else now
    lease = read(host, app)
    if lease and lease["deploy"] != deploy and holds(lease, now):
        return lease
    _write(host, app, deploy, now)
    return None


def renew(host: Host, app: str, deploy: str, now: Optional[float] = None) -> None:
    """Under the flock, when a step ends: the lease lasts LEASE_SECONDS from now (if it is DEPLOY's)."""
    lease = read(host, app)
    if lease and lease["deploy"] == deploy:
        _write(host, app, deploy, time.time() if now is None else now)


def end(host: Host, app: str, deploy: str, to: str = "", now: Optional[float] = None) -> str:
    """Under the flock: DEPLOY's lease given up ("released"), or with TO handed over to TO ("handed over",
    for LEASE_SECONDS, which TO's steps renew); "not held" when it is not DEPLOY's any more (ran out, and
    maybe taken by another: a handover then fails, naming it)."""
    now = time.time() if now is None else now
    lease = read(host, app)
    mine = bool(lease) and lease["deploy"] in (deploy, to)
    if not mine and holds(lease, now):
        if to:
            raise AgentError("the deploy lease %s/%s.lease was lost before its handover to %s (its up waits for the holder)\nheld by: %s" % (
                LOCK_DIR, app, to, describe(lease, now)))
        return "not held"
    if to:
        _write(host, app, to, now)
        return "handed over"
    if mine:
        os.unlink(_path(host, app))
        return "released"
    return "not held"


def whose(lease: Dict[str, Any]) -> str:
    """Who holds LEASE: "the deploy of stack S" or "fdeploy C of stack S"."""
    command = FDEPLOY.fullmatch(lease["deploy"])
    return "fdeploy %s of stack %s" % (command.group(2), command.group(1)) if command else "the deploy of stack %s" % lease["deploy"]


def describe(lease: Dict[str, Any], now: Optional[float] = None) -> str:
    now = time.time() if now is None else now
    left = max(0, int(float(lease.get("expires", 0)) - now))
    how = ("it holds the lease while it runs; it runs out %ds after it ended" if FDEPLOY.fullmatch(lease["deploy"])
           else "between two of its steps; its lease runs out %ds after its last step") % lease_seconds()
    return "%s (%s, in %ds at most)" % (whose(lease), how, left)


def step_of(host: Host, app: str, now: Optional[float] = None) -> str:
    """For a message while another step holds the flock: ", a step of <whose>" when a lease still holds, else "".
    Read without the flock: the lease file is only ever replaced whole (write_atomic)."""
    now = time.time() if now is None else now
    lease = read(host, app)
    return ", a step of %s" % whose(lease) if lease and holds(lease, now) else ""
