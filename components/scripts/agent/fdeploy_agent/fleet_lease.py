"""One deploy lease across a whole fleet rollout (fleet.py). Before any host drains, the rollout takes
the deploy lease (lease.py) of every host in sorted host order — so two stacks sharing hosts cannot
deadlock — and renews each until the rollout ends: another stack's step on any host of the fleet waits
for it (naming this deploy) from the first host's drain to the last host's check, instead of running
between two hosts. A host whose lease another deploy holds past timeouts.lockWait fails the rollout
before anything changed, naming that deploy.
An fdeploy command that changes a fleet holds the same leases the same way (fleet_hold.py).
held() holds the decisions (pytest with fakes); the verb fleet-lease takes or renews one host's lease,
fleet-lease-end gives it up or hands it over."""
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Sequence

from . import lease
from .app import check_name
from .errors import AgentError
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]


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
