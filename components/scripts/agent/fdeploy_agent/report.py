"""What the server really runs (the stack's ServerState, `fdeploy status`): the live slot's
release and whether it runs, and whether each setting in force is the deployed one — the unit and
socket, the environment file, the nginx site — compared with the staged `.desired` copies. Read-only;
state-read (server_state.py) takes the deploy lock around it for a settled read; state-fix repairs with it."""
import json
import os
from typing import Any, Dict

from . import app as apps
from . import shared_links
from .fsutil import read_regular
from .host import Host


def in_force(host: Host, desired: str, in_force_path: str) -> bool:
    """The file in force is the deployed one (true when nothing was deployed)."""
    want = read_regular(host.path(desired))
    return want is None or read_regular(host.path(in_force_path)) == want


def state_report(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    conf = app.config_dir
    slot = (read_regular(host.path(app.slots + "/live")) or b"main").decode().strip() or "main"
    link = host.path("%s/%s" % (app.slots, slot))
    release = os.path.basename(os.path.realpath(link)) if os.path.islink(link) else ""
    if release and read_regular(host.path("%s/releases/%s/.fdeploy-release.json" % (app.root, release))) is None:
        release = ""
    running = host.run(["systemctl", "is-active", "--quiet", "fdeploy-%s@%s.service" % (app.name, slot)]).returncode == 0
    site = "/etc/nginx/sites-available/fdeploy-%s.conf" % app.name
    site_ok = in_force(host, conf + "/site.desired", site)
    if site_ok and read_regular(host.path(conf + "/site.desired")) is not None:
        site_ok = os.path.islink(host.path("/etc/nginx/sites-enabled/fdeploy-%s.conf" % app.name))
    try:
        deployed = json.loads(read_regular(host.path(app.slots + "/activation.live.json")) or b"{}")
    except ValueError:
        deployed = {}
    return {
        "release": release,
        "running": running,
        "unitInForce": in_force(host, conf + "/service.desired", app.unit_path("service"))
        and in_force(host, conf + "/socket.desired", app.unit_path("socket")),
        "envInForce": in_force(host, conf + "/env.desired", app.env_file),
        "siteInForce": site_ok,
        # the rendered shared files' links in shared/ are the ones shared-create made (not the app's stand-ins)
        "sharedFilesInForce": not release or not shared_links.wrong_links(host, app, release),
        # what the last switch activated (state-fix activates it again)
        "deployedRelease": str(deployed.get("RELEASE_ID", "")),
        "deployedRuntime": str(deployed.get("RUNTIME", "python")),
    }


def canary_slot(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """The slot a canary in progress started (slots/canary.json, written per step by canary_flow.py),
    "" when none: the next activation stops it if the canary was interrupted."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    try:
        slot = json.loads(read_regular(host.path(app.slots + "/canary.json")) or b"{}").get("slot", "")
    except (ValueError, AttributeError):
        slot = ""
    return {"slot": slot if slot in ("blue", "green") else ""}
