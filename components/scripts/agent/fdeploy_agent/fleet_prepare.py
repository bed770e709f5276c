"""`fleet-prepare`: a fleet host's part of the rollout that changes nothing it serves (fleet.py runs it on every
host at once, before the first drain): the new release started and health-checked on the idle slot, beside the
live one, as blue-green does (switch.py Switch.prepare), so that the host's turn is only drain -> flip -> check
-> ready (activate with PREPARED). The settings in force stay the live release's until the turn.
params: activate's (switch.py), and UNDO with SLOT: that prepared slot stopped (the rollout stopped before the
host's turn). Result: {"slot": the prepared slot, "" where the turn runs the whole switch} or {"stopped": bool}."""
from typing import Any, Callable, Dict

from . import live
from .host import Host
from .switch import Switch, locked

Log = Callable[[str], None]


def fleet_prepare(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, bundle: str = live.BUNDLE) -> Dict[str, Any]:
    sw = Switch(host, params, log, bundle)
    if params.get("UNDO"):
        return {"stopped": locked(sw, lock_wait, lambda: sw.unprepare(str(params.get("SLOT") or "")))}
    return {"slot": locked(sw, lock_wait, sw.prepare)}
