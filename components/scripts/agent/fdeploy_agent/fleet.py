"""The fleet switch (components/fleet-switch.ts): one release goes live on every app host, host by host
(or ROLLOUT batches), and a host that fails stops the rollout and sends every host that had switched
back to the release it ran before. Runs on the deploying machine (`fleet-rollout`, a local step of the
stack), reaching each host and the balancer over SSH with their pinned host keys; on each it runs the
deploy's own agent verbs (fleet-lease, state-read, fleet-prepare, activate; lb-drain/lb-ready on the balancer). Every
host's deploy lease is held from before the first drain to the end (fleet_lease.py).

rollout() holds the decisions and is pytest-tested with fake hosts; SshFleet is how they reach servers."""
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from .errors import AgentError
from . import lb_session, ssh_mux
from .fleet_lease import held
from .host import Host

Log = Callable[[str], None]


class HostFailed(AgentError):
    """A host's step failed; the message names the host."""


class HostGone(HostFailed):
    """A host did not answer over SSH."""


class Fleet(Protocol):
    def previous(self, host: str) -> Optional[str]: ...   # the host's live release now (None: none yet)
    def prepare(self, host: str) -> None: ...             # the new release started and checked beside the live one (fleet_prepare.py)
    def tidy(self, host: str) -> None: ...                # every slot but the live one stopped (the rollout ended)
    def drain(self, host: str) -> None: ...               # no new requests to it (in-flight ones finish)
    def switch(self, host: str) -> None: ...              # the new release live on it (activate; its own check)
    def ready(self, host: str, check: bool) -> None: ...  # back in the balancer (check: its health through its nginx first)
    def back(self, host: str, release: str) -> None: ...  # RELEASE live again (activate's rollback path)


def batches(hosts: Sequence[str], size: int) -> List[List[str]]:
    order = sorted(hosts)   # sorted: two stacks sharing hosts take their locks in the same order
    return [order[i:i + size] for i in range(0, len(order), max(1, size))]


def each(step: Callable[[str], None], hosts: Sequence[str]) -> Optional[Tuple[str, AgentError]]:
    """STEP on every host of a batch at once; the first host (sorted) that failed and its error, or None."""
    if not hosts:
        return None
    if len(hosts) == 1:
        try:
            step(hosts[0])
            return None
        except AgentError as e:
            return hosts[0], e
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = [(h, pool.submit(step, h)) for h in hosts]
    for h, f in futures:
        e = f.exception()
        if isinstance(e, AgentError):
            return h, e
        if e is not None:
            raise e
    return None


def each_result(step: Callable[[str], Any], hosts: Sequence[str]) -> Dict[str, Any]:
    """STEP on every host at once: host -> its result (the first host's error, in HOSTS' order, raised)."""
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return dict(zip(hosts, pool.map(step, hosts)))


def rollout(hosts: Sequence[str], size: int, release: str, fleet: Fleet, log: Log,
            started: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, Optional[str]]:
    """Each host's release afterwards (all RELEASE); a failure raises HostFailed naming the host, after
    every host that had switched went back (the failed one keeps what it ran: activate's own fallback).
    First, on every host at once, what changes nothing it serves: its release read, the new one prepared
    beside it (a host that fails there stops the rollout before any other host switched). Then the hosts of a
    batch are drained, switched (the prepared slot flipped live, the old one kept running) and checked
    together. At the end, however it ends, every host's slots but the live one are stopped (tidy: also what
    a rollout killed before its end left running). STARTED: hosts a canary switched already
    (fleet_canary.py), with their release before: they go back too."""
    started = started or {}
    took = Phases()
    rest = [h for h in sorted(hosts) if h not in started]
    before: Dict[str, Optional[str]] = dict(took("read", lambda: each_result(fleet.previous, rest)), **started)
    todo = [h for h in rest if before[h] not in (None, release)]
    failed = took("prepare", lambda: each(fleet.prepare, todo))
    log("fleet: every host: %s" % took)
    now: Dict[str, Optional[str]] = dict(before, **{h: release for h in started})
    switched: List[str] = sorted(started)
    if failed:
        current, e = failed
        log("host %s failed: %s" % (current, e))
        went_back = _go_back(switched, before, now, fleet, log)
        each_result(lambda h: _quietly(lambda: fleet.tidy(h), log), sorted(hosts))
        raise HostFailed("the rollout (flask-deploy:servers) of %s stopped at host %s: %s\n%s" % (
            release, current, e, summary(went_back, [h for h in rest if h != current], now)))
    for group in batches(rest, size):
        def switch(h: str) -> None:
            fleet.switch(h)
            switched.append(h)
            now[h] = release
        # a host's first release: its site comes after the switch, so activate's own check is the check
        # a batch of every host (a fleet of one) is not drained: nothing would be left serving; its own switch serves on
        took = Phases()
        failed = (took("drain", lambda: each(fleet.drain, group if len(group) < len(hosts) else []))
                  or took("switch", lambda: each(switch, [h for h in group if before[h] != release]))
                  or took("ready", lambda: each(lambda h: fleet.ready(h, check=before[h] is not None), group)))
        log("fleet: %s: %s" % (", ".join(group), took))
        if failed:
            current, e = failed
            log("host %s failed: %s" % (current, e))
            switched.sort()
            went_back = _go_back(switched, before, now, fleet, log)
            each_result(lambda h: _quietly(lambda: fleet.tidy(h), log), sorted(hosts))
            for h in group:   # drained hosts of this batch that were not sent back: in the balancer again
                if h not in switched:
                    _quietly(lambda: fleet.ready(h, check=False), log)
            never = [h for h in sorted(hosts) if h not in switched and h != current]
            raise HostFailed("the rollout (flask-deploy:servers) of %s stopped at host %s: %s\n%s" % (
                release, current, e, summary(went_back, never, now)))
    took = Phases()
    took("tidy", lambda: each_result(lambda h: _quietly(lambda: fleet.tidy(h), log), sorted(hosts)))
    log("fleet: every host: %s" % took)
    return now


class Phases:
    """How long each phase of a batch took, for the log: where a host's switch time goes."""
    def __init__(self) -> None:
        self.took: List[Tuple[str, float]] = []

    def __call__(self, name: str, step: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        try:
            return step()
        finally:
            self.took.append((name, time.monotonic() - t0))

    def __str__(self) -> str:
        return ", ".join("%s %.1f s" % t for t in self.took)


def _go_back(switched: List[str], before: Dict[str, Optional[str]], now: Dict[str, Optional[str]], fleet: Fleet, log: Log) -> List[str]:
    went = []
    for h in reversed(switched):
        prev = before[h]
        if prev is None:
            log("host %s had no release before: it keeps this one, out of the balancer" % h)
            continue
        try:
            fleet.back(h, prev)
            now[h] = prev
            went.append(h)
            fleet.ready(h, check=True)
        except AgentError as e:   # still tell what happened on the others
            log("host %s could not go back to %s: %s" % (h, prev, e))
    return sorted(went)


def _quietly(step: Callable[[], None], log: Log) -> None:
    try:
        step()
    except AgentError as e:
        log(str(e))


def summary(went_back: List[str], never: List[str], now: Dict[str, Optional[str]]) -> str:
    parts = ["went back to their previous release: %s" % (", ".join(went_back) or "none"),
             "never switched: %s" % (", ".join(never) or "none"),
             "now: %s" % ", ".join("%s %s" % (h, r or "(none)") for h, r in sorted(now.items()))]
    return "; ".join(parts)


# --- the deploying machine's side: SSH to each host, the deploy's agent verbs there ---------------

SSH_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
# A host that is gone (powered off: no answer at all) must not hold the rollout: its connect gives up after
# CONNECT_SECONDS, and a call in progress when it died (no FIN ever comes) after SILENT_SECONDS of silence.
CONNECT_SECONDS, ALIVE_EVERY, ALIVE_MISSED = 15, 5, 3
SILENT_SECONDS = ALIVE_EVERY * ALIVE_MISSED
GONE = re.compile(r"connect to host .*: (No route to host|Connection timed out|Connection refused|Network is unreachable)"
                  r"|Timeout, server .* not responding|Broken pipe|Connection reset|Connection closed by|closed by remote host"
                  r"|Connection timed out during banner exchange")


def ssh_argv(target: Dict[str, Any], known_hosts: str, command: str, control: str = "") -> List[str]:
    """CONTROL: the control socket of the host's one connection (ssh_mux.py)."""
    host, user, port = str(target.get("host", "")), str(target.get("user", "")), int(target.get("port", 22))
    if not SSH_HOST.fullmatch(host) or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise AgentError("bad host name or user in the SSH target %r" % target)
    key = target.get("privateKeyPath")
    return ["ssh", "-p", str(port), "-o", "UserKnownHostsFile=" + known_hosts, "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % CONNECT_SECONDS, "-o", "ServerAliveInterval=%d" % ALIVE_EVERY,
            "-o", "ServerAliveCountMax=%d" % ALIVE_MISSED, "-o", "LogLevel=ERROR", *(ssh_mux.options(control) if control else []),
            *(["-i", os.path.expanduser(str(key))] if key else []), "%s@%s" % (user, host), command]


def known_hosts(folder: str, targets: Sequence[Dict[str, Any]]) -> None:
    """Each TARGET's pinned host key in FOLDER/known_hosts-<host> (written once: other threads read them)."""
    for t in targets:
        host = t["host"] if int(t.get("port", 22)) == 22 else "[%s]:%s" % (t["host"], t["port"])
        with open(known_path(folder, t), "a") as f:
            f.write("%s %s\n" % (host, " ".join(str(t["hostKey"]).split()[:2])))


def known_path(folder: str, target: Dict[str, Any]) -> str:
    return os.path.join(folder, "known_hosts-%s" % target["host"])


def ssh_json(host: Host, folder: str, target: Dict[str, Any], command: str, stdin: str, what: str, name: str, log: Log,
             key: str = "servers", mux: bool = False) -> Dict[str, Any]:
    """COMMAND (an agent verb's line) on TARGET with STDIN: its JSON result; its log lines as "  [NAME] …". A failure
    raises HostFailed naming WHAT, NAME and the setting KEY (a host that does not answer: said so). MUX: over the
    host's one connection (ssh_mux.py; SshFleet.close ends it)."""
    argv = ssh_argv(target, known_path(folder, target), command, ssh_mux.control_path(folder, target) if mux else "")
    r = host.run(argv, input=stdin)
    for line in (r.stderr or "").splitlines():
        log("  [%s] %s" % (name, line))
    last = (r.stdout or "").strip().splitlines()[-1:] or [""]
    try:
        result = json.loads(last[0])
    except ValueError:
        result = {}
    return judged(host, argv, r.returncode, result, (r.stderr or "").strip(), what, name, key, mux)


def judged(host: Host, argv: List[str], returncode: int, result: Any, said: str, what: str, name: str, key: str, mux: bool) -> Dict[str, Any]:
    """ssh_json's verdict on a call ARGV that ended with RETURNCODE, its JSON RESULT and its stderr SAID."""
    if returncode == 255 and (GONE.search(said) or (mux and ssh_mux.ended(host, argv, returncode, said))):   # ssh's own failure: the host, not the step
        raise HostGone("%s on %s (flask-deploy:%s) failed: the host did not answer over SSH\n%s\n(a step gives up on a host "
                         "after %d s connecting, or %d s without an answer once connected)" % (
                             what, name, key, said.splitlines()[-1][-200:] if said else "its connection ended: no answer to its keepalives",
                             CONNECT_SECONDS, SILENT_SECONDS))
    if returncode != 0:
        raise HostFailed("%s on %s (flask-deploy:%s) failed (exit %d): %s" % (
            what, name, key, returncode, (result.get("error") if isinstance(result, dict) else "") or said[-300:]))
    return result if isinstance(result, dict) else {}


class SshFleet:
    def __init__(self, host: Host, params: Dict[str, Any], folder: str, log: Log) -> None:
        self.host, self.log, self.folder = host, log, folder
        self.hosts = {h["address"]: h for h in params["HOSTS"]}
        self.balancer = params.get("BALANCER") or None
        self.app = str(params["APP"])
        self.health_timeout = int(params.get("HEALTH_TIMEOUT", 30))
        self.drain_wait = int(params.get("DRAIN_SECONDS", 30))
        self.history: Optional[List[Any]] = None   # the first switched host's, from its activate
        self.prepared: Dict[str, str] = {}          # address -> the slot fleet-prepare started the release on
        self.gone: List[str] = []                   # hosts that did not answer over SSH: no more calls to them
        known_hosts(folder, [h["ssh"] for h in self.hosts.values()] + ([self.balancer["ssh"]] if self.balancer else []))
        # the balancer's drains and readies in one agent process there (lb_session.py), when the stack gives its line
        b = self.balancer if self.balancer and self.balancer.get("lb-session") else None
        self.lb_argv = ssh_argv(b["ssh"], known_path(folder, b["ssh"]), b["lb-session"], ssh_mux.control_path(folder, b["ssh"])) if b else []
        self.session = lb_session.Session(self.lb_argv, self.app, lambda line: log("  [the balancer] %s" % line)) if b else None

    def _ssh(self, target: Dict[str, Any], command: str, stdin: str, what: str, name: str, key: str = "servers") -> Dict[str, Any]:
        try:
            return ssh_json(self.host, self.folder, target, command, stdin, what, name, self.log, key, mux=True)
        except HostGone:
            self.gone.append(name)
            raise

    def _targets(self) -> List[Dict[str, Any]]:
        return [h["ssh"] for h in self.hosts.values()] + ([self.balancer["ssh"]] if self.balancer else [])

    def connect(self) -> None:
        """Each host's one connection opened, all at once (the leases are taken one by one: each would open its
        own); one that fails is left to the first step, which says why."""
        targets = self._targets()
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            list(pool.map(lambda t: self.host.run(ssh_argv(t, known_path(self.folder, t), "true", ssh_mux.control_path(self.folder, t))), targets))

    def close(self) -> None:
        """The balancer's session and each host's one connection ended (ssh_mux.py)."""
        if self.session:
            self.session.close()
        ssh_mux.close(self.host, [ssh_argv(t, known_path(self.folder, t), "", ssh_mux.control_path(self.folder, t)) for t in self._targets()])

    def previous(self, address: str) -> Optional[str]:
        h = self.hosts[address]
        try:
            r = self._ssh(h["ssh"], h["read"], json.dumps({"APP": self.app}), "state-read", address)
        except HostFailed as e:
            if "exit 3" in str(e):   # nothing deployed there yet
                return None
            raise
        rel = r.get("release")
        return rel if isinstance(rel, str) and re.fullmatch(r"[0-9a-f]{12}", rel) else None

    def lease(self, address: str) -> int:
        """This deploy's lease on the host taken or renewed (fleet_lease.py); how long it lasts."""
        h = self.hosts[address]
        deploy = json.loads(h["params"]).get("DEPLOY", "")
        r = self._ssh(h["ssh"], h["lease"], json.dumps({"APP": self.app, "DEPLOY": deploy}), "the deploy lease (fleet-lease)", address)
        return int(r.get("seconds") or 30)

    def _lb(self, verb: str, params: Dict[str, Any], address: str) -> None:
        what = "the balancer (host %s)" % address
        if self.session:
            code, answer, said = self.session.call(verb, dict(params, APP=self.app, HOST=address))
            judged(self.host, self.lb_argv, code, answer, said, verb, what, "loadBalancer", True)
        elif self.balancer:
            self._ssh(self.balancer["ssh"], self.balancer[verb], json.dumps(dict(params, APP=self.app, HOST=address)), verb, "the balancer (host %s)" % address, "loadBalancer")

    def drain(self, address: str) -> None:
        self._lb("lb-drain", {"WAIT": self.drain_wait}, address)

    def prepare(self, address: str) -> None:
        h = self.hosts[address]
        r = self._ssh(h["ssh"], h["prepare"], h["params"], "the new release beside the live one (fleet-prepare)", address)
        if r.get("slot"):
            self.prepared[address] = str(r["slot"])

    def tidy(self, address: str) -> None:
        h = self.hosts[address]
        if address in self.gone:   # another 15 s for nothing: its next rollout's tidy stops what runs there
            self.log("host %s did not answer: its slots beside the live one are left" % address)
        else:
            params = dict(json.loads(h["params"]), TIDY=1)
            self._ssh(h["ssh"], h["prepare"], json.dumps(params), "stopping the slots beside the live one (fleet-prepare)", address)

    def switch(self, address: str) -> None:
        h = self.hosts[address]
        slot = self.prepared.get(address, "")
        params = json.dumps(dict(json.loads(h["params"]), PREPARED=slot)) if slot else h["params"]
        r = self._ssh(h["ssh"], h["activate"], params, "the switch (activate)", address)
        if self.history is None and isinstance(r.get("history"), list):
            self.history = r["history"]

    def ready(self, address: str, check: bool) -> None:
        self._lb("lb-ready", {"WAIT_UP": self.health_timeout if check else 0}, address)

    def back(self, address: str, release: str) -> None:
        h = self.hosts[address]
        params = dict(json.loads(h["params"]), RELEASE_ID=release, ROLLBACK=1, FLEET_BACK=1)
        self._ssh(h["ssh"], h["activate"], json.dumps(params), "going back to %s (activate)" % release, address)


def fleet_rollout(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP, RELEASE_ID, BATCH_SIZE, HEALTH_TIMEOUT, DRAIN_SECONDS, HOSTS [{address, ssh, read,
    lease, prepare, activate, params}], BALANCER {ssh, lb-drain, lb-ready, lb-session[, lb-canary]} or null, and strategy
    canary's CANARY_* (fleet_canary.py). Result: HOSTS address -> release."""
    release = str(params.get("RELEASE_ID", ""))
    if not re.fullmatch(r"[0-9a-f]{12}", release):
        raise AgentError("bad release id %r" % release)
    size = params.get("BATCH_SIZE", 1)
    if not isinstance(size, int) or size < 1:
        raise AgentError("bad batch size %r (flask-deploy:rollout.batchSize: a whole number from 1)" % size)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fdeploy-fleet-") as folder:
        from . import fleet_canary   # (it builds on this module)
        fleet = (fleet_canary.SshCanaryFleet if "CANARY_STEPS" in params else SshFleet)(host, params, folder, log)
        try:
            fleet.connect()
            with held(list(fleet.hosts), fleet.lease, log):
                log("fleet: connected and leases held after %.1f s" % (time.monotonic() - t0))
                if isinstance(fleet, fleet_canary.SshCanaryFleet):
                    hosts = fleet_canary.rollout(list(fleet.hosts), size, release, fleet, params, log, host.clock, host.sleep, fleet.rollback)
                else:
                    hosts = rollout(list(fleet.hosts), size, release, fleet, log)
        finally:
            fleet.close()
    log("fleet: %s live on %s (the rollout took %.1f s)" % (release, ", ".join(sorted(hosts)), time.monotonic() - t0))
    return {"hosts": hosts, "history": fleet.history or []}
