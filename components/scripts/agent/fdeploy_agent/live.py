"""What went live: recorded by the switch (switch.py, after its history line) in state.json, and
the script bundle of that deploy pointed at by ~/.fdeploy/<app>/live-scripts of the SSH user, which
`fdeploy` runs: the scripts that match the server's state, never the newest upload (a failed up
leaves newer scripts behind)."""
import os
import re
import time
from typing import Any, Dict

from . import app as apps
from . import state as states
from .errors import AgentError
from .host import Host

BUNDLE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))   # …/scripts-<hash>


def went_live(host: Host, params: Dict[str, Any], log: Any, lock_wait: int, bundle: str = BUNDLE) -> Dict[str, Any]:
    """params (the activation's): APP, RELEASE_ID, STRATEGY. Runs inside the switch's lock."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = str(params.get("RELEASE_ID", ""))
    if not re.fullmatch(r"[0-9a-f]{12}", rid):
        raise AgentError("bad release id %r" % rid)
    if not re.fullmatch(r"scripts-[0-9a-f]{12}", os.path.basename(bundle)):
        raise AgentError("the agent does not run from an uploaded script bundle (%s)" % bundle)
    state = states.load(host, app)
    state["live"] = {"release": rid, "strategy": str(params.get("STRATEGY", "")), "scripts": bundle,
                     "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    states.save(host, app, state)
    link = os.path.join(os.path.dirname(bundle), "live-scripts")
    tmp = "%s.tmp-%d" % (link, os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(bundle), tmp)
    os.rename(tmp, link)   # atomic: fdeploy sees the old or the new bundle, never none
    return {"scripts": bundle}
