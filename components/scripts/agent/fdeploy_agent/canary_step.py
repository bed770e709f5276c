"""One canary step's watch, shared by the single server's canary (canary_flow.py: nginx's split) and the
fleet's (fleet_canary.py: HAProxy's weights): the gate every second (early: a clear error share, or the new
release's process dead, aborts at once), its verdict at the end of CANARY_STEP_SECONDS, and a step with
fewer than CANARY_MIN_REQUESTS requests on the new release waits (up to CANARY_MAX_WAIT_SECONDS more),
fails or passes (CANARY_LOW_TRAFFIC)."""
from typing import Any, Callable, Dict, NoReturn, Tuple

Gate = Callable[[str], Tuple[int, str]]   # MODE (early | final) -> (verdict, numbers): canary.verdict's, 5: the process died
Abort = Callable[..., NoReturn]           # (what, summary="", verdict=0): the traffic back, then raises


def watch(p: Dict[str, Any], i: int, n: int, pct: int, clock: Callable[[], float], sleep: Callable[[float], None],
          gate: Gate, abort: Abort, log: Callable[[str], None]) -> str:
    """Step I of N (PCT %) from now on, with the settings P (CANARY_*): returns its numbers when it passed."""
    seconds, low = int(p["CANARY_STEP_SECONDS"]), p["CANARY_LOW_TRAFFIC"]
    at = "step %d/%d (%d %%)" % (i, n, pct)
    deadline = clock() + seconds
    waited = deadline + int(p["CANARY_MAX_WAIT_SECONDS"])
    few = "fewer than %s requests on the new release" % p["CANARY_MIN_REQUESTS"]
    while True:
        sleep(1)
        verdict, summary = gate("early")
        if verdict == 5:
            abort("the new release's process died at %s: %s" % (at, summary))
        if verdict != 0:
            abort(at, summary, verdict)
        if clock() < deadline:
            continue
        verdict, summary = gate("final")
        if verdict != 2:
            break
        if low == "pass":
            log("canary step %d/%d: %s; passing (canary.lowTraffic pass)" % (i, n, few))
            verdict = 0
            break
        if low == "fail":
            abort("%s: %s (canary.lowTraffic fail)" % (at, few), summary)
        if clock() >= waited:
            abort("%s: %s after waiting %ss more (canary.maxWaitSeconds)" % (at, few, p["CANARY_MAX_WAIT_SECONDS"]), summary)
    if verdict != 0:
        abort(at, summary, verdict)
    log("canary %s passed: %s" % (at, summary))
    return summary
