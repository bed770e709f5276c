"""Strategy canary's flow (switch.py runs it; its decisions are canary.py's). The release starts on
the idle slot (as blue-green) and is checked there; then the traffic shifts to it in steps
(CANARY_STEPS, percent): upstream.conf lists the live and the new slot with those weights. Each step
runs CANARY_STEP_SECONDS and is gated on what nginx logged for it (canary.gate): the new release's
5xx share and p95; with fewer than CANARY_MIN_REQUESTS requests it waits (up to
CANARY_MAX_WAIT_SECONDS more), fails or passes (CANARY_LOW_TRAFFIC). A tripped gate, a dead process
or nginx refusing the split sends all traffic back at once, stops the new slot and fails the deploy
with the numbers. After the 100 % step the live link moves to the new slot, the upstream goes back
to it, and the old slot is drained and stopped. slots/canary.json (written atomically per step)
lets `fdeploy status` show the canary and the next activation undo one that was killed (recover)."""
import json
import os
import time
from typing import Any, NoReturn, Tuple

from . import canary as decisions
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .canary_step import watch
from .slots import is_split, socket_path, upstream_conf

GATE_WHY = {3: "the new release's 5xx share is over canary.maxErrorRate (%(CANARY_MAX_ERROR_RATE)s)",
            4: "the new release's p95 is over canary.maxP95Ms (%(CANARY_MAX_P95_MS)s ms)"}


def state_file(sw: Any) -> str:
    return sw.host.path(sw.app.slots + "/canary.json")


def recover(sw: Any) -> None:
    """Undo what a killed canary left: the split, then its running new slot (switch.py calls it first)."""
    if is_split(read_regular(sw.host.path(upstream_conf(sw.app))), sw.app):
        sw.log("an interrupted canary left traffic split: all of it back to the live slot")
        sw.slots.unsplit()
        sw.enter("canary-unsplit")
    path = state_file(sw)
    if not os.path.lexists(path):
        return
    try:
        slot = json.loads(read_regular(path) or b"{}").get("slot", "")
    except (ValueError, AttributeError):
        slot = ""
    if slot in ("blue", "green") and slot != sw.slots.live():
        sw.log("an interrupted canary left slot %s running: stopping it" % slot)
        sw.slots.stop(slot)
        sw.enter("canary-slot-stopped")
    os.unlink(path)


def back(sw: Any) -> None:
    """The traffic back to the live slot, the new slot stopped (an abort, or any failure mid-canary)."""
    if not sw.canary_slot:
        return
    if not sw.slots.unsplit():
        sw.log("warning: nginx did not take the plain upstream back (nginx -t above)")
    sw.drain()   # requests already on the new slot finish
    sw.slots.stop(sw.canary_slot)
    if os.path.lexists(state_file(sw)):
        os.unlink(state_file(sw))
    sw.canary_slot = ""
    sw.enter("canary-back")


def aborted_at(what: str, summary: str, verdict: int, params: Any) -> str:
    """Where a canary stopped and why, with its numbers (the single server's and the fleet's abort)."""
    reason = GATE_WHY[verdict] % params if verdict in GATE_WHY else ("the gate check failed (%d)" % verdict if verdict else "")
    return what + (": " + reason if reason else "") + (" [%s]" % summary if summary else "")


def abort(sw: Any, what: str, summary: str = "", verdict: int = 0) -> NoReturn:
    a = aborted_at(what, summary, verdict, sw.params)
    back(sw)
    sw.record("failed")
    s = sw.slots.live()
    r = os.path.basename(sw.slots.release_of(s))
    raise AgentError("canary aborted at %s; all traffic is back on release %s (slot %s), the new slot is stopped, the database was not touched"
                     " by the abort (see fdeploy logs)" % (a, r, s))


def gate(sw: Any, offset: int, mode: str) -> Tuple[int, str]:
    params = {k: sw.params.get(k) for k in ("CANARY_MAX_ERROR_RATE", "CANARY_MAX_P95_MS", "CANARY_MIN_REQUESTS")}
    r = decisions.canary_gate(sw.host, dict(params, APP=sw.app.name, SLOT=sw.canary_slot, OFFSET=str(offset), MODE=mode), sw.log, 0)
    return r["verdict"], r["summary"]


def step(sw: Any, i: int, n: int, pct: int, live: str, new: str) -> None:
    """One step: PCT % to the new slot for CANARY_STEP_SECONDS, gated (returns when it passed)."""
    p = sw.params
    if pct >= 100:
        servers = "server unix:%s;\n" % socket_path(sw.app, new)
    else:
        servers = "server unix:%s weight=%d;\nserver unix:%s weight=%d;\n" % (socket_path(sw.app, live), 100 - pct, socket_path(sw.app, new), pct)
    if not sw.slots.put_upstream(servers):
        abort(sw, "step %d/%d (%d %%): nginx rejected the split (nginx -t above)" % (i, n, pct))
    sw.enter("canary-step-%d" % i)
    try:
        offset = os.stat(sw.host.path(decisions.upstream_log(sw.app))).st_size
    except OSError:
        offset = 0
    state = {"release": sw.rid, "slot": new, "from": os.path.basename(sw.slots.release_of(live)), "step": i, "steps": n, "percent": pct,
             "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pid": os.getpid()}
    write_atomic(state_file(sw), (json.dumps(state) + "\n").encode(), 0o644)
    sw.log("canary step %d/%d: %d %% of requests to the new release for %ss" % (i, n, pct, p["CANARY_STEP_SECONDS"]))
    at = "step %d/%d (%d %%)" % (i, n, pct)
    watch(p, i, n, pct, sw.host.clock, sw.host.sleep, lambda mode: checked_gate(sw, offset, mode, at),
          lambda what, summary="", verdict=0: abort(sw, what, summary, verdict), sw.log)


def checked_gate(sw: Any, offset: int, mode: str, at: str) -> Tuple[int, str]:
    try:
        return gate(sw, offset, mode)
    except AgentError as e:
        abort(sw, at, str(e), 1)
        raise   # not reached: abort raises


def canary(sw: Any) -> None:
    live = sw.slots.live()
    why = decisions.canary_plan(sw.host, sw.params, sw.log, 0)["fallback"]   # checks the CANARY_* settings when it applies
    if why:
        sw.log("canary: %s; going live blue-green instead" % why)
        sw.strategy = "blue-green"
        sw.enter("canary-fallback")
        sw.blue_green()
        return
    sw.preflight("light")
    new = "green" if live == "blue" else "blue"
    sw.start_checked(new, "slot %s; slot %s keeps serving" % (new, live))
    sw.canary_slot = new   # a failure from here on sends the traffic back (back())
    p = sw.params
    steps = [int(x) for x in str(p["CANARY_STEPS"]).split(",")]
    sw.log("canary: release %s on slot %s, release %s on slot %s; steps %s %%, %ss each; gates: 5xx share ≤ %s, p95 ≤ %s ms, ≥ %s requests (else %s)"
           % (sw.rid, new, os.path.basename(sw.slots.release_of(live)), live, " → ".join(map(str, steps)), p["CANARY_STEP_SECONDS"],
              p["CANARY_MAX_ERROR_RATE"], p["CANARY_MAX_P95_MS"], p["CANARY_MIN_REQUESTS"], p["CANARY_LOW_TRAFFIC"]))
    for i, pct in enumerate(steps, 1):
        step(sw, i, len(steps), pct, live, new)
    sw.slots.go_live(new)   # the live link -> the new slot, then the upstream back to the live link
    sw.enter("live-" + new)
    if not sw.slots.unsplit():
        sw.log("warning: nginx did not take the plain upstream back; the new slot serves through it meanwhile")
    sw.canary_slot = ""
    if os.path.lexists(state_file(sw)):
        os.unlink(state_file(sw))
    sw.drain()
    sw.slots.stop(live)
    sw.enter("stopped-" + live)

