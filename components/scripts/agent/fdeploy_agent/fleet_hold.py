"""fdeploy on a fleet (cli/lib/fleet-lease.ts): a command that changes it (rollback, maintenance, jobs run) holds
every host's deploy lease the way a rollout does (fleet_lease.py: sorted order, renewed) for its whole run, as
"<project>/<stack>/fdeploy-<command>": an up of any stack waits for it, and it for an up (naming it). A rollback
hands every lease over to its own up ("<project>/<stack>") right before that up starts, so nothing gets in
between, and gives that up's lease up when it ends. The verb fleet-hold runs on the deploying machine and
reaches each host over SSH with its pinned key (fleet.py), running the live scripts' fleet-lease and
fleet-lease-end there; hold() holds the decisions (pytest with fakes)."""
import json
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List, Sequence

from . import lease
from .app import check_name
from .errors import AgentError
from .fleet_lease import held
from .host import Host

Log = Callable[[str], None]
PROBES = 5   # times a host is asked at once while a step holds its flock, before the wait (1 s apart)


def hold(hosts: Sequence[str], take: Callable[[str], int], end: Callable[[str, str, str], str], log: Log, what: str,
         control: Iterable[str], say: Callable[[str], None], deploy: str, to: str = "") -> Dict[str, str]:
    """Every host's lease held for DEPLOY (held(), sorted order) while the caller works: SAY("held") once all
    are, then until CONTROL says "end" or ends (each given up: END(host, DEPLOY, "")) or "handover" (each handed
    over to TO, the command's own up: END(host, DEPLOY, TO); then SAY("handed over"), and once CONTROL says
    "end" or ends, that up has ended: TO's lease given up at once, END(host, TO, ""), so that the next command
    need not wait for it to run out). A host that cannot be taken gives back those taken before it.
    Result: host -> what the last END did."""
    taken: List[str] = []

    def take_one(h: str) -> int:
        seconds = take(h)
        if h not in taken:
            taken.append(h)
        return seconds

    handover = False
    try:
        with held(hosts, take_one, log, what):
            say("held")
            for line in control:
                if line.strip() in ("handover", "end"):
                    handover = line.strip() == "handover"
                    break
    finally:
        done = _end_each(taken, lambda h: end(h, deploy, to if handover else ""), "handed over" if handover else "given up", log)
    if handover:
        say("handed over")
        for line in control:
            if line.strip() == "end":
                break
        done = _end_each(taken, lambda h: end(h, to, ""), "given up", log)
    return done


def _end_each(hosts: Sequence[str], end: Callable[[str], str], what: str, log: Log) -> Dict[str, str]:
    done: Dict[str, str] = {}
    for h in sorted(hosts):
        try:
            done[h] = end(h)
        except AgentError as e:   # it runs out on its own (an up waits LEASE_SECONDS at most)
            log("the deploy lease of host %s was not %s (it runs out on its own): %s" % (h, what, e))
            done[h] = "runs out"
    return done


def fleet_hold(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb, on the deploying machine (fdeploy): params (stdin's first line) APP, DEPLOY (<project>/<stack>/
    fdeploy-<command>), WHAT (the command, for the log), TO (a rollback: its up's deploy), WAIT, HOSTS
    [{address, ssh, lease, end}] (each host's fleet-lease and fleet-lease-end command lines). Every host's
    lease held until stdin says "handover" or "end", or ends (hold()); {"lease": "held" | "handed over",
    "hosts": […]} printed when that happened."""
    from .fleet import HostFailed, known_hosts, ssh_json
    app = check_name(params.get("APP"))
    deploy, to = lease.deploy_of(params), lease.deploy_of({"DEPLOY": params.get("TO") or ""})
    if not deploy:
        raise AgentError("fleet-hold needs DEPLOY (<project>/<stack>/fdeploy-<command>)")
    wait = params.get("WAIT") if isinstance(params.get("WAIT"), int) else lock_wait
    hosts = {h["address"]: h for h in params.get("HOSTS") or []}
    with tempfile.TemporaryDirectory(prefix="fdeploy-hold-") as folder:
        known_hosts(folder, [h["ssh"] for h in hosts.values()])

        def call(h: str, line: str, body: Dict[str, Any], what: str, said: Log = log) -> Dict[str, Any]:
            return ssh_json(host, folder, hosts[h]["ssh"], hosts[h][line], json.dumps(dict({"APP": app, "DEPLOY": deploy}, **body)), what, h, said)

        def take(h: str) -> int:
            # at once if free; else say who holds it (the deploy whose lease it is, rather than a step that holds the
            # flock for a moment: asked again up to PROBES times), then wait for it
            for probe in range(PROBES):
                try:
                    return int(call(h, "lease", {"WAIT": 0}, "the deploy lease (fleet-lease)", lambda line: None).get("seconds") or 30)
                except HostFailed as e:
                    if "another deploy" not in str(e):
                        raise
                    who = str(e).split(": ", 1)[-1].split("; waited")[0]
                if " is held by " not in who:
                    break
                time.sleep(1)
            log("fdeploy: host %s: %s; waiting for it (up to %ds)…" % (h, who, wait))
            return int(call(h, "lease", {"WAIT": wait}, "the deploy lease (fleet-lease)").get("seconds") or 30)

        def end(h: str, holder: str, to_: str) -> str:
            return str(call(h, "end", {"DEPLOY": holder, "TO": to_}, "the deploy lease's end (fleet-lease-end)").get("lease") or "")

        def say(event: str) -> None:   # fdeploy goes on when it reads this line (cli/lib/fleet-lease.ts)
            print(json.dumps({"lease": event, "hosts": sorted(hosts)}), flush=True)

        done = hold(list(hosts), take, end, log, str(params.get("WHAT") or "fdeploy"), sys.stdin, say, deploy, to)
    return {"hosts": done}
