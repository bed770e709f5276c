"""Strategy canary on a fleet behind the balancer the stack manages (README "Strategies"), run by the fleet
switch (fleet.py) on the deploying machine. The first host (sorted, as the rollout) is drained, switched
(its own activate, blue-green) and put back with CANARY_STEPS[0] % of the app's requests (HAProxy's
weights, haproxy_canary.py); each step but the last runs CANARY_STEP_SECONDS, gated (canary_step.watch,
the single server's gates) on what HAProxy logged for that host against the others. The last step
(100 %) is the normal rollout of the other hosts, weights back first. A tripped gate (or any failure
before the last step): the weights back to what they were, the first host back to its previous release
(the rollout's go-back), and the up fails naming the gate and its numbers.

rollout() holds the decisions and is pytest-tested with fake hosts; SshCanaryFleet is how it reaches them."""
import json
from typing import Any, Callable, Dict, List, NoReturn, Optional, Protocol, Sequence, Tuple

from . import fleet as plain
from .canary import checked, PARAMS
from .canary_flow import aborted_at
from .canary_step import watch
from .errors import AgentError

Log = Callable[[str], None]


class CanaryFleet(plain.Fleet, Protocol):
    def unsafe(self, host: str) -> List[str]: ...                  # HOST's new migrations not marked canary-safe
    def share(self, host: str, pct: int) -> None: ...              # HOST gets PCT % of the app's requests (weights)
    def mark(self) -> str: ...                                     # where the balancer's log is now
    def gate(self, host: str, mark: str, mode: str) -> Tuple[int, str]: ...   # canary.verdict on HOST's requests since MARK
    def restore(self) -> None: ...                                 # every host back to the weight it had


class Tripped(AgentError):
    """A step's gate tripped (or the step could not be judged): aborted_at()'s text."""


def why_not(steps: Sequence[int], hosts: Sequence[str], before: Optional[str], release: str, rollback: bool) -> str:
    """Why this rollout is not a canary ("" when it is)."""
    if len(hosts) < 2:
        return "one host: nothing to compare it with"
    if before is None:
        return "no release is live on %s yet" % sorted(hosts)[0]
    if before == release:
        return "%s runs release %s already" % (sorted(hosts)[0], release)
    if rollback:
        return "a rollback returns to a release that already ran"
    if len(steps) < 2:
        return "canary.steps has no step before 100 %"
    return ""


def unsafe_why(unsafe: Sequence[str]) -> str:
    # as on one server: the other hosts would run the old release on the new schema for minutes, and for good after an abort
    return "migrations applied for this release are not marked '-- fdeploy: canary-safe': %s" % " ".join(unsafe) if unsafe else ""


def rollout(hosts: Sequence[str], size: int, release: str, fleet: CanaryFleet, params: Dict[str, Any], log: Log,
            clock: Callable[[], float], sleep: Callable[[float], None], rollback: bool = False) -> Dict[str, Optional[str]]:
    """Each host's release afterwards (all RELEASE), as fleet.rollout; the canary's steps first on the first host."""
    checked(params, PARAMS)
    steps = [int(x) for x in str(params["CANARY_STEPS"]).split(",")]
    first = sorted(hosts)[0]
    was = {h: fleet.previous(h) for h in sorted(hosts)}
    before = was[first]
    why = why_not(steps, hosts, before, release, rollback) or unsafe_why(fleet.unsafe(first))
    if why:
        log("canary: %s; the hosts switch one batch after another instead" % why)
        return plain.rollout(hosts, size, release, fleet, log)
    n = len(steps)
    log("canary: release %s on %s first; steps %s %% of the app's requests at the balancer, %ss each; gates: 5xx share ≤ %s, p95 ≤ %s ms, "
        "≥ %s requests (else %s)" % (release, first, " → ".join(map(str, steps)), params["CANARY_STEP_SECONDS"], params["CANARY_MAX_ERROR_RATE"],
                                     params["CANARY_MAX_P95_MS"], params["CANARY_MIN_REQUESTS"], params["CANARY_LOW_TRAFFIC"]))
    now = dict(was)

    def trip(what: str, summary: str = "", verdict: int = 0) -> NoReturn:
        raise Tripped(aborted_at(what, summary, verdict, params))

    def judged(mark: str, mode: str, at: str) -> Tuple[int, str]:
        try:
            return fleet.gate(first, mark, mode)
        except Tripped:
            raise
        except AgentError as e:
            trip(at, str(e), 1)

    switched = False
    try:
        fleet.drain(first)
        fleet.switch(first)
        switched, now[first] = True, release
        fleet.share(first, steps[0])   # while drained: its first request already comes at its step's share
        fleet.ready(first, check=True)
        for i, pct in enumerate(steps[:-1], 1):
            if i > 1:
                fleet.share(first, pct)
            mark = fleet.mark()
            at = "step %d/%d (%d %%)" % (i, n, pct)
            log("canary step %d/%d: %d %% of requests to the new release (host %s) for %ss" % (i, n, pct, first, params["CANARY_STEP_SECONDS"]))
            watch(params, i, n, pct, clock, sleep, lambda mode: judged(mark, mode, at), trip, log)
        fleet.restore()
    except AgentError as e:
        log("canary on host %s failed: %s" % (first, e))
        plain._quietly(fleet.restore, log)
        went = plain._go_back([first] if switched else [], {first: before}, now, fleet, log)
        if not switched:   # drained, never switched: in the balancer again
            plain._quietly(lambda: fleet.ready(first, check=False), log)
        if isinstance(e, Tripped):
            e = AgentError("canary aborted at %s; host %s is back on release %s at its weight before (see fdeploy status)" % (e, first, before))
        raise plain.HostFailed("the rollout (flask-deploy:servers) of %s stopped at host %s: %s\n%s" % (
            release, first, e, plain.summary(went, sorted(h for h in hosts if h != first), now)))
    log("canary: the new release passed every step on %s; the other hosts switch now (100 %%)" % first)
    return plain.rollout(hosts, size, release, fleet, log, started={first: before})


class SshCanaryFleet(plain.SshFleet):
    """SshFleet, and the balancer's lb-canary verb (haproxy_canary.py)."""

    def __init__(self, host: Any, params: Dict[str, Any], folder: str, log: Log) -> None:
        super().__init__(host, params, folder, log)
        if not self.balancer or "lb-canary" not in self.balancer:
            raise AgentError("flask-deploy:strategy: canary on several servers needs the balancer the stack manages (loadBalancer.host)")
        self.rollback = any(json.loads(h["params"]).get("ROLLBACK") for h in self.hosts.values())
        self.limits = {k: params.get(k) for k in ("CANARY_MAX_ERROR_RATE", "CANARY_MAX_P95_MS", "CANARY_MIN_REQUESTS")}

    def _canary(self, action: str, params: Dict[str, Any], what: str) -> Dict[str, Any]:
        assert self.balancer is not None
        return self._ssh(self.balancer["ssh"], self.balancer["lb-canary"], json.dumps(dict(params, APP=self.app, ACTION=action)),
                         "the canary's %s (lb-canary)" % what, "the balancer", "loadBalancer")

    def unsafe(self, address: str) -> List[str]:
        h = self.hosts[address]
        r = self._ssh(h["ssh"], h["migrations"], json.dumps({"APP": self.app}), "the canary's migration check (canary-migrations)", address)
        return [str(x) for x in r.get("unsafe") or []]

    def share(self, host: str, pct: int) -> None:
        self._canary("weights", {"HOST": host, "PERCENT": pct}, "weights")

    def mark(self) -> str:
        return str(self._canary("mark", {}, "log mark").get("mark", ""))

    def gate(self, host: str, mark: str, mode: str) -> Tuple[int, str]:
        r = self._canary("gate", dict(self.limits, HOST=host, MARK=mark, MODE=mode), "gate")
        return int(r.get("verdict", 1)), str(r.get("summary", ""))

    def restore(self) -> None:
        self._canary("restore", {}, "weights back")
