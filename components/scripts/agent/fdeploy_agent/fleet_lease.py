"""One deploy lease across a whole fleet rollout (fleet.py). Before any host drains, the rollout takes
the deploy lease (lease.py) of every host in sorted host order — so two stacks sharing hosts cannot
deadlock — and renews each until the rollout ends: another stack's step on any host of the fleet waits
for it (naming this deploy) from the first host's drain to the last host's check, instead of running
between two hosts. A host whose lease another deploy holds past timeouts.lockWait fails the rollout
before anything changed, naming that deploy.
An fdeploy command that changes a fleet (rollback, maintenance, jobs run) holds the same leases the same
way for its whole run (fleet-hold, on the deploying machine), as "<project>/<stack>/fdeploy-<command>":
an up of any stack waits for it, and it for an up (naming it); a rollback hands every lease over to its
own up ("<project>/<stack>") right before that up starts, so nothing gets in between.
held() holds the decisions (pytest with fakes); the verb fleet-lease takes or renews one host's lease,
fleet-lease-end gives it up or hands it over."""
import json
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence

from . import lease
from .app import check_name
from .errors import AgentError
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
PROBES = 5   # fleet-hold: times a host is asked at once whose flock a step holds, before the wait (1 s apart)


@contextmanager
def held(hosts: Sequence[str], take: Callable[[str], int], log: Log, what: str = "the whole rollout") -> Iterator[None]:
    """TAKE(host) takes or renews HOST's lease (waiting for another deploy within its bound) and says how
    long it lasts in seconds. Every host's lease taken in sorted order, each renewed (by a thread of its own:
    a host whose step holds its flock delays no other host's renewal) at a third of that until the end."""
    stop = threading.Event()
    threads: List[threading.Thread] = []

    def renew(h: str, seconds: int) -> None:
        while not stop.wait(max(1.0, seconds / 3.0)):
            try:
                seconds = take(h)
            except AgentError as e:   # the next step on this host waits for the lease itself
                log("the deploy lease of host %s was not renewed: %s" % (h, e))
    try:
        for h in sorted(hosts):
            seconds = take(h)
            t = threading.Thread(target=renew, args=(h, seconds), name="lease-%s" % h, daemon=True)
            t.start()
            threads.append(t)
        log("fleet: the deploy lease of %s held for %s" % (", ".join(sorted(hosts)), what))
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


def fleet_lease(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb: params APP, DEPLOY, WAIT (seconds, at most LOCK_WAIT; default LOCK_WAIT). Takes (or renews) this
    deploy's lease on the app, waiting up to WAIT for another deploy's flock and lease (the error names it).
    Result: its length in seconds."""
    app, deploy = check_name(params.get("APP")), lease.deploy_of(params)
    if not deploy:
        raise AgentError("fleet-lease needs DEPLOY (<project>/<stack>)")
    wait = params.get("WAIT", lock_wait)
    wait = min(wait, lock_wait) if isinstance(wait, int) and wait >= 0 else lock_wait
    with deploy_lock(host, app, wait, log, deploy=deploy):
        pass
    return {"deploy": deploy, "seconds": lease.lease_seconds()}


def fleet_lease_end(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb: params APP, DEPLOY, TO (optional). DEPLOY's lease given up, or handed over to TO (lease.end)."""
    app, deploy = check_name(params.get("APP")), lease.deploy_of(params)
    to = lease.deploy_of({"DEPLOY": params.get("TO") or ""})
    if not deploy:
        raise AgentError("fleet-lease-end needs DEPLOY (<project>/<stack>)")
    with deploy_lock(host, app, lock_wait, log):
        return {"lease": lease.end(host, app, deploy, to)}


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
