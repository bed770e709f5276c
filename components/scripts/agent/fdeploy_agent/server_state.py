"""The stack's ServerState resource on the server (components/server-state.ts calls these verbs):
  state-read  params APP: report.py's state-report under the deploy lock, so that a deploy of
              another stack in progress (mid-restart, mid-switch) is waited for and the stack
              records a settled state (`pulumi refresh`, `pulumi preview --refresh`)
  state-fix   params APP: the repair of drift (`pulumi up --refresh`): repair.py decides and puts
              the deployed site back (tested with nginx -t here: reloaded, or the site in force
              restored); then the deployed release installed again from its upload and activated
              again, as repair.py says; then the settled report
Maintenance mode is intended state, not drift: neither verb looks at it."""
import os
from typing import Any, Callable, Dict

from . import app as apps
from . import repair, report, site
from .errors import AgentError
from .fsutil import read_regular
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
BUNDLE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # scripts-<hash>/
# the deploy steps a repair runs again, with their parameters' JSON on stdin (each takes the lock itself)
STEPS = {"install": ["python3", "-I", "-B", BUNDLE + "/agent", "release-install"], "activate": ["python3", "-I", "-B", BUNDLE + "/agent", "activate"]}


def run_step(host: Host, step: str, params_text: str, log: Log) -> None:
    """Deploy step STEP ("install": the release from its upload; "activate": the last activation's
    parameters again); its output goes to the log. A failure fails the repair, naming the step."""
    r = host.run(STEPS[step], merge_output=True, input=params_text)
    for line in (r.stdout or "").splitlines():
        log(line)
    if r.returncode != 0:
        raise AgentError("the repair could not %s the deployed release (the lines above say why); "
                         "pulumi up --refresh tries again" % ("install" if step == "install" else "activate"))


def state_read(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.deployed(host, params.get("APP"))
    with deploy_lock(host, app.name, lock_wait, log):
        return report.state_report(host, {"APP": app.name}, log, lock_wait)


def put_site_back(host: Host, app: apps.App, log: Log) -> None:
    """After repair.py put the deployed site in force: nginx takes it (reload), or the site that was
    in force goes back and the repair fails naming the cause (site.load_checked)."""
    site.load_checked(host, app.name, log, "nginx rejects the deployed site (nginx -t above); the site in force is unchanged: "
                      "pulumi up (without --refresh) deploys the site again")
    site.site_saved_drop(host, {"APP": app.name}, log, 0)
    log("repaired: the deployed nginx site is in force again")


def state_fix(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.deployed(host, params.get("APP"))
    with deploy_lock(host, app.name, lock_wait, log):
        plan = repair.state_repair(host, {"APP": app.name}, log, lock_wait)
        if plan["site"]:
            put_site_back(host, app, log)
    # (the steps take the lock themselves)
    if plan["install"]:
        run_step(host, "install", plan["install"], log)
    if plan["activate"]:
        text = read_regular(host.path(app.slots + "/activation.live.json"))
        if text is None:
            raise AgentError("%s/activation.live.json is gone: pulumi up (without --refresh) deploys the release again" % app.slots)
        run_step(host, "activate", text.decode(), log)
    return state_read(host, params, log, lock_wait)
