"""The repair of drift (`pulumi up --refresh`: server_state.py's state-fix, under the deploy lock). What the
stack wants is on the server already: the staged `.desired` copies and the last switch's parameters
(slots/activation.live.json); report.py's state-report says what differs from them.
  state-repair  params APP: refuses first what it cannot repair (the deployed release deleted with
                its upload); then puts the deployed nginx site back when it drifted (site.py records
                the one in force: state-fix tests the site with nginx -t, then reloads or restores).
                {"site": true (test and reload), "install": "<the agent's release-install JSON params>" or
                 "" (the deployed release was deleted; its upload is here), "activate": true
                 (state-fix runs the agent's activate < slots/activation.live.json: the unit, environment or shared
                 links drifted, or the app does not run the deployed release)}
"""
import json
import os
from typing import Any, Callable, Dict

from . import app as apps
from . import release, report, site
from .errors import AgentError
from .fsutil import read_regular
from .host import Host

Log = Callable[[str], None]


def plan(host: Host, app: apps.App, now: Dict[str, Any], uploads: str, log: Log) -> Dict[str, Any]:
    """What a repair does, decided from the report NOW before anything changes."""
    rid = now["deployedRelease"]
    install = ""
    if rid and read_regular(host.path("%s/releases/%s/%s" % (app.root, rid, release.MARKER))) is None:
        if not os.path.isdir("%s/%s" % (uploads, rid)):
            raise AgentError("the deployed release %s and its upload were deleted from the server: pulumi up --target-replace "
                             "<URN of the release-upload> sends it again\n(pulumi stack --show-urns lists the URNs)" % rid)
        log("repairing: the deployed release %s was deleted; installing it again from its upload" % rid)
        install = json.dumps({"APP": app.name, "RELEASE_ID": rid, "RUNTIME": now["deployedRuntime"]})
    # a unit or environment changed by hand: the app restarts with the deployed one (and a shared
    # file the app replaced is linked again); the switch puts the .desired copies in force
    settings = now["unitInForce"] and now["envInForce"] and now["sharedFilesInForce"]
    activate = bool(rid) and not (settings and now["release"] == rid and now["running"])
    if activate:
        log("repairing: activating the deployed release %s again (live state was: %s)" % (rid, json.dumps(now, sort_keys=True)))
    return {"site": not now["siteInForce"], "install": install, "activate": activate}


def state_repair(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    result = plan(host, app, report.state_report(host, params, log, lock_wait), release.bundle_home() + "/uploads", log)
    if result["site"]:
        want = read_regular(host.path(app.config_dir + "/site.desired"))
        if want is None:   # siteInForce is true without one: never here
            raise AgentError("no deployed site to put back (%s/site.desired is missing)" % app.config_dir)
        text = want.decode()   # put() ends the site with a newline, as site-stage wrote it
        site.put(host, app.name, text[:-1] if text.endswith("\n") else text, save=True, desired=False)
    return result
