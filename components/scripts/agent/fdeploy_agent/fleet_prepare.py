"""`fleet-prepare`: a fleet host's part of the rollout that changes nothing it serves (fleet.py runs it on every
host at once, before the first drain): the new release started and health-checked on the idle slot, beside the
live one, as blue-green does (switch.py Switch.prepare), so that the host's turn is only drain -> flip -> check
-> ready (activate with PREPARED; the old slot keeps running, so a host sent back flips back to it). The settings
in force stay the live release's until the turn.
params: activate's (switch.py), and TIDY: the rollout ended, every slot but the live one is stopped (the old slots
the flips kept, the prepared ones of hosts whose turn never came).
Result: {"slot": the prepared slot, "" where the turn runs the whole switch} or, with TIDY, {"stopped": [slots]}."""
from typing import Any, Callable, Dict

from . import live
from .host import Host
from .switch import Switch, locked

Log = Callable[[str], None]


def fleet_prepare(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, bundle: str = live.BUNDLE) -> Dict[str, Any]:
    sw = Switch(host, params, log, bundle)
    if params.get("TIDY"):
        return {"stopped": locked(sw, lock_wait, sw.tidy)}
    return {"slot": locked(sw, lock_wait, sw.prepare)}
