"""Options that depend on the Gunicorn a release installed. `--no-control-socket` (the slots run
sandboxed, with no control socket) exists from Gunicorn 25.1 on; an older pin (Gunicorn 20.1 and
later work) refuses it, so each slot gets it through its own environment file (slots/<slot>.env:
GUNICORN_FLAGS, which the unit's command line expands), as its release's Gunicorn takes it."""
import glob
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from . import app as apps
from .errors import AgentError
from .host import Host

CONTROL_SOCKET_SINCE = (25, 1)


def installed_version(host: Host, release_dir: str) -> Optional[Tuple[int, ...]]:
    """The Gunicorn version the release's venv holds (its dist-info folder's name), or None."""
    for d in glob.glob(host.path(release_dir + "/.venv/lib/python3*/site-packages/gunicorn-*.dist-info")):
        m = re.fullmatch(r"gunicorn-(\d+(?:\.\d+)*)[^/]*\.dist-info", os.path.basename(d))
        if m:
            return tuple(int(x) for x in m.group(1).split("."))
    return None


def flags(version: Optional[Tuple[int, ...]]) -> List[str]:
    """The version-dependent options; with no Gunicorn found (e.g. runtime docker), the newest's."""
    return ["--no-control-socket"] if version is None or version[:2] >= CONTROL_SOCKET_SINCE else []


def slot_env(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """params APP, RELEASE_ID: the text of a slot's environment file for that release."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = str(params.get("RELEASE_ID", ""))
    if not re.fullmatch(r"[0-9a-f]{12}", rid):
        raise AgentError("bad release id %r" % rid)
    version = installed_version(host, "%s/releases/%s" % (app.root, rid))
    return {"text": "RELEASE_ID=%s\nGUNICORN_FLAGS=%s\n" % (rid, " ".join(flags(version))),
            "gunicorn": ".".join(map(str, version)) if version else ""}
