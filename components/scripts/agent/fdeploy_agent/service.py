"""service-delete --app APP (what `pulumi destroy` runs for the Gunicorn service): every slot of the
app stopped and disabled, its containers (runtime docker) and mounts gone, its units, drop-ins,
links and runtime folder removed. Writing the units is units.py's (unit-stage); putting them in
force is the switch's.
  service-delete  params APP: {"stopped": [units]}
"""
import glob
import os
import shutil
from typing import Any, Dict, List

from . import app as apps
from . import mounts
from .errors import AgentError
from .host import Host


def slot_units(host: Host, app: str) -> List[str]:
    """The app's slot units systemd knows (any state): fdeploy-<app>@<slot>.service/.socket."""
    r = host.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "fdeploy-%s@*" % app])
    units = [line.split()[0] for line in (r.stdout or "").splitlines() if line.split()]
    return [u for u in units if u.startswith("fdeploy-%s@" % app)]


def service_delete(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    app = apps.check_name(params.get("APP"))
    units = slot_units(host, app)
    for u in units:
        host.run(["systemctl", "disable", "--now", "--quiet", u])
    if host.which("docker"):   # runtime docker: a container left by a unit stopped hard
        r = host.run(["docker", "ps", "-aq", "--filter", "name=^fdeploy-%s-" % app])
        ids = (r.stdout or "").split() if r.returncode == 0 else []
        if ids:
            host.run(["docker", "rm", "-f"] + ids)
    try:   # runtime docker: the slots' mounts of the app's folders (each unit's stop detaches its own)
        mounts.docker_unmount(host, {"APP": app}, log, lock_wait)
    except AgentError:
        pass
    system = host.path("/etc/systemd/system")
    gone = [os.path.join(system, "fdeploy-%s@.%s" % (app, kind)) for kind in ("service", "socket")]
    gone += glob.glob(os.path.join(system, glob.escape("fdeploy-%s@" % app) + "*.service.d"))   # the slots' users (slot-user)
    for wants in ("multi-user.target.wants", "sockets.target.wants"):
        gone += glob.glob(os.path.join(system, wants, glob.escape("fdeploy-%s@" % app) + "*"))
    gone += [host.path("/etc/tmpfiles.d/fdeploy-%s.conf" % app), host.path("/run/fdeploy-%s" % app)]
    for p in gone:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.unlink(p)
    host.run(["systemctl", "daemon-reload"])
    return {"stopped": units}
