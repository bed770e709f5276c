"""The settings a host goes back to when a fleet rollout fails (fleet.py): the units and environment
file the release that was live before the last switch ran with. When a switch makes another release
live, the <name>.live copies (slots.py: what the release live until now ran with) become the
<name>.previous copies, tagged in previous.json with both releases. A fleet's way back (activate with
FLEET_BACK) puts them in force instead of the staged .desired ones, which are the new release's:
without them the host would run its old release with the new env and unit. A single server never
needs this: its failed switch puts the .live copies back itself.
The tag is removed before the copies change and written after, so a crash at any line leaves no tag
that names copies of another release."""
import json
import os
from typing import Optional

from .app import App
from .fsutil import read_regular, write_atomic
from .host import Host
from .slots import SETTINGS

TAG = "previous.json"


def _path(host: Host, app: App, name: str) -> str:
    return host.path("%s/%s" % (app.config_dir, name))


def remember(host: Host, app: App, was_live: str, going_live: str) -> None:
    """Before the settings in force become the .live copies: when the live release changes from
    WAS_LIVE to GOING_LIVE, WAS_LIVE's .live copies become the .previous ones."""
    if not was_live or was_live == going_live:
        return
    try:
        os.unlink(_path(host, app, TAG))
    except FileNotFoundError:
        pass
    for name in SETTINGS:
        data = read_regular(_path(host, app, name + ".live"))
        if data is not None:
            write_atomic(_path(host, app, name + ".previous"), data, 0o600)
        else:
            try:
                os.unlink(_path(host, app, name + ".previous"))
            except FileNotFoundError:
                pass
    write_atomic(_path(host, app, TAG), json.dumps({"release": was_live, "replacedBy": going_live}).encode(), 0o600)


def usable(host: Host, app: App, release: str, live_now: Optional[str]) -> bool:
    """The .previous copies are RELEASE's settings from before LIVE_NOW went live."""
    try:
        tag = json.loads(read_regular(_path(host, app, TAG)) or b"null")
    except ValueError:
        return False
    return isinstance(tag, dict) and tag.get("release") == release and tag.get("replacedBy") == live_now
