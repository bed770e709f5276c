"""One deploy lease across the whole fleet rollout (agent fleet_lease.py): every host's lease taken in
sorted order before the first drain, renewed until the rollout ends, so another stack's step on any host
waits (naming this deploy) instead of running between two hosts; a host another deploy holds fails the
rollout before anything changed."""
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import fleet, fleet_hold, fleet_lease, lease, lock  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

OLD, NEW = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
HOSTS = ["10.0.0.3", "10.0.0.1", "10.0.0.2"]
ME, OTHER = "proj/fleet", "proj/other"


class Servers:
    """Each host's real lease (lease.py on a temporary root of its own) and a fake fleet switching them:
    at every step, OTHER tries to take the host's lease (another stack's step between two hosts)."""

    def __init__(self, tmp_path, seconds=30):
        self.hosts = {}
        for h in HOSTS:
            (tmp_path / h / "run/fdeploy").mkdir(parents=True, mode=0o700)
            self.hosts[h] = Host(root=str(tmp_path / h))
        self.seconds, self.events, self.intruded = seconds, [], []
        self.live = {h: OLD for h in HOSTS}

    def take(self, h, deploy=ME):
        other = lease.take(self.hosts[h], "shop", deploy)
        if other is not None:
            raise AgentError("another deploy of 'shop' is running on this server: %s" % lease.describe(other))
        self.events.append(("lease", h))
        return self.seconds

    def intrude(self):
        for h in HOSTS:
            if lease.take(self.hosts[h], "shop", OTHER) is None:
                self.intruded.append(h)

    def previous(self, h):
        return self.live[h]

    def prepare(self, h):   # a step on every host before the first drain: the lease holds from here on
        self.intrude()

    def tidy(self, h):
        pass

    def drain(self, h):
        self.intrude()
        self.events.append(("drain", h))

    def switch(self, h):
        self.intrude()
        self.live[h] = NEW

    def ready(self, h, check):
        self.intrude()

    def back(self, h, release):
        self.live[h] = release


def test_every_hosts_lease_is_taken_in_sorted_order_before_the_first_drain_and_held_to_the_end(tmp_path):
    s = Servers(tmp_path)
    with fleet_lease.held(HOSTS, s.take, lambda line: None):
        fleet.rollout(HOSTS, 1, NEW, s, lambda line: None)
    assert s.events[:4] == [("lease", "10.0.0.1"), ("lease", "10.0.0.2"), ("lease", "10.0.0.3"), ("drain", "10.0.0.1")]
    assert s.intruded == [], "no other deploy's step got in between two hosts"
    assert s.live == {h: NEW for h in HOSTS}


def test_without_the_fleet_lease_another_deploy_gets_in_between_two_hosts(tmp_path):
    s = Servers(tmp_path)
    fleet.rollout(HOSTS, 1, NEW, s, lambda line: None)
    assert s.intruded, "what the held lease prevents"


def test_a_host_another_deploy_holds_fails_the_rollout_before_anything_changed_naming_it(tmp_path):
    s = Servers(tmp_path)
    lease.take(s.hosts["10.0.0.2"], "shop", OTHER)
    with pytest.raises(AgentError, match="the deploy of stack proj/other"):
        with fleet_lease.held(HOSTS, s.take, lambda line: None):
            fleet.rollout(HOSTS, 1, NEW, s, lambda line: None)
    assert s.events == [("lease", "10.0.0.1")] and s.live == {h: OLD for h in HOSTS}


def test_each_hosts_lease_is_renewed_on_its_own_while_the_rollout_runs(tmp_path):
    s = Servers(tmp_path, seconds=1)   # renewed every second
    slow = threading.Event()
    renewed = []

    def take(h):
        if h == "10.0.0.1" and renewed:   # a step holds this host's flock: its renewal waits
            slow.wait(5)
        renewed.append(h)
        return s.take(h)
    with fleet_lease.held(HOSTS, take, lambda line: None):
        time.sleep(2.5)
        later = list(renewed)
        slow.set()
    assert later.count("10.0.0.3") >= 2 and later.count("10.0.0.2") >= 2, later


def test_a_renewal_that_fails_is_said_and_the_rollout_goes_on(tmp_path):
    logs, calls = [], []

    def take(h):
        calls.append(h)
        if len(calls) > 1:
            raise AgentError("ssh: connection refused")
        return 1
    with fleet_lease.held(["10.0.0.1"], take, logs.append):
        time.sleep(1.5)
    assert any("was not renewed: ssh: connection refused" in line for line in logs)


def test_the_verb_waits_for_another_deploys_lease_then_names_it(tmp_path):
    (tmp_path / "run/fdeploy").mkdir(parents=True, mode=0o700)
    host = Host(root=str(tmp_path))
    lease.take(host, "shop", OTHER)
    with pytest.raises(AgentError, match="running on this server: the deploy of stack proj/other"):
        fleet_lease.fleet_lease(host, {"APP": "shop", "DEPLOY": ME}, lambda line: None, 0)
    lease.renew(host, "shop", OTHER, now=0)   # ran out
    assert fleet_lease.fleet_lease(host, {"APP": "shop", "DEPLOY": ME}, lambda line: None, 0) == {"deploy": ME, "seconds": 30}
    assert lease.read(host, "shop")["deploy"] == ME
    assert os.listdir(tmp_path / "run/fdeploy")   # the flock is released: the same deploy's steps go on
    with lock.deploy_lock(host, "shop", 0, lambda line: None, deploy=ME):
        pass


def test_the_verb_needs_a_deploy_id(tmp_path):
    with pytest.raises(AgentError, match="needs DEPLOY"):
        fleet_lease.fleet_lease(Host(root=str(tmp_path)), {"APP": "shop"}, lambda line: None, 0)


# --- fdeploy on a fleet (fleet-hold): a changing command holds the same leases for its whole run -------------
FDEPLOY = ME + "/fdeploy-rollback"


def test_an_fdeploy_command_holds_every_hosts_lease_in_sorted_order_until_it_ends_then_gives_them_up(tmp_path):
    s, ended, ready = Servers(tmp_path), [], []

    def end(h, holder, to):
        ended.append((h, lease.end(s.hosts[h], "shop", holder, to)))
        return ended[-1][1]

    def take(h):
        return s.take(h, FDEPLOY)

    def work(event):   # what the command does once every lease is held: another stack and this stack's own up wait
        ready.append([lease.read(s.hosts[h], "shop")["deploy"] for h in sorted(HOSTS)])
        for h in HOSTS:
            for other in (OTHER, ME):
                assert lease.take(s.hosts[h], "shop", other)["deploy"] == FDEPLOY
    done = fleet_hold.hold(HOSTS, take, end, lambda line: None, "fdeploy maintenance", iter(["end\n"]), work, FDEPLOY)
    assert s.events == [("lease", "10.0.0.1"), ("lease", "10.0.0.2"), ("lease", "10.0.0.3")]
    assert ready == [[FDEPLOY] * 3]
    assert done == {h: "released" for h in HOSTS} and [h for h, _ in ended] == sorted(HOSTS)
    for h in HOSTS:   # given up: the next deploy goes on at once, not 30 s later
        assert lease.read(s.hosts[h], "shop") is None and lease.take(s.hosts[h], "shop", OTHER) is None


def test_a_rollback_hands_every_lease_over_to_its_own_up_nothing_gets_in_between_and_it_is_given_up_when_that_up_ends(tmp_path):
    s, said = Servers(tmp_path), []

    def work(event):
        said.append(event)
        if event == "handed over":   # the rollback's own up runs now
            for h in HOSTS:
                assert lease.take(s.hosts[h], "shop", OTHER)["deploy"] == ME, "another stack still waits"
                assert lease.take(s.hosts[h], "shop", ME) is None, "the rollback's own up goes on"
    done = fleet_hold.hold(HOSTS, lambda h: s.take(h, FDEPLOY), lambda h, holder, to: lease.end(s.hosts[h], "shop", holder, to),
                            lambda line: None, "fdeploy rollback", iter(["handover\n", "end\n"]), work, FDEPLOY, to=ME)
    assert said == ["held", "handed over"]
    assert done == {h: "released" for h in HOSTS}, "its up ended: the next command need not wait for the lease to run out"
    assert all(lease.take(s.hosts[h], "shop", OTHER) is None for h in HOSTS)


def test_a_command_ending_without_a_word_gives_its_leases_up_too(tmp_path):
    s = Servers(tmp_path)
    fleet_hold.hold(HOSTS, lambda h: s.take(h, FDEPLOY), lambda h, holder, to: lease.end(s.hosts[h], "shop", holder, to),
                     lambda line: None, "fdeploy rollback", iter([]), lambda e: None, FDEPLOY, to=ME)   # fdeploy died: stdin closed
    assert all(lease.read(s.hosts[h], "shop") is None for h in HOSTS)


def test_an_fdeploy_command_waits_for_a_running_rollout_and_names_it_then_gives_back_what_it_took(tmp_path):
    s = Servers(tmp_path)
    lease.take(s.hosts["10.0.0.2"], "shop", ME)   # this stack's up is rolling out
    ready = []
    with pytest.raises(AgentError, match="the deploy of stack proj/fleet "):
        fleet_hold.hold(HOSTS, lambda h: s.take(h, FDEPLOY), lambda h, holder, to: lease.end(s.hosts[h], "shop", holder, to),
                         lambda line: None, "fdeploy rollback", iter(["handover\n"]), lambda e: ready.append(1), FDEPLOY, to=ME)
    assert ready == [] and s.events == [("lease", "10.0.0.1")]
    assert lease.read(s.hosts["10.0.0.1"], "shop") is None, "the host taken before is given back"
    assert lease.read(s.hosts["10.0.0.2"], "shop")["deploy"] == ME, "the rollout's lease is untouched"


def test_an_up_waiting_for_an_fdeploy_command_is_told_which_command_of_which_stack(tmp_path):
    (tmp_path / "run/fdeploy").mkdir(parents=True, mode=0o700)
    host = Host(root=str(tmp_path))
    lease.take(host, "shop", ME + "/fdeploy-jobs-run")
    with pytest.raises(AgentError, match=r"running on this server: fdeploy jobs-run of stack proj/fleet \(it holds the lease while it runs"):
        fleet_lease.fleet_lease(host, {"APP": "shop", "DEPLOY": ME}, lambda line: None, 0)


def test_the_verb_waits_no_longer_than_its_wait_and_ends_or_hands_over_only_its_own_lease(tmp_path):
    (tmp_path / "run/fdeploy").mkdir(parents=True, mode=0o700)
    host = Host(root=str(tmp_path))
    lease.take(host, "shop", OTHER)
    t0 = time.monotonic()
    with pytest.raises(AgentError, match="the deploy of stack proj/other"):
        fleet_lease.fleet_lease(host, {"APP": "shop", "DEPLOY": FDEPLOY, "WAIT": 0}, lambda line: None, 120)
    assert time.monotonic() - t0 < 1.5
    assert fleet_lease.fleet_lease_end(host, {"APP": "shop", "DEPLOY": FDEPLOY}, lambda line: None, 0) == {"lease": "not held"}
    assert lease.read(host, "shop")["deploy"] == OTHER, "another deploy's lease is never given up"
    with pytest.raises(AgentError, match="lost before its handover to proj/fleet \\(its up waits for the holder\\)\nheld by: the deploy of stack proj/other"):
        fleet_lease.fleet_lease_end(host, {"APP": "shop", "DEPLOY": FDEPLOY, "TO": ME}, lambda line: None, 0)


def test_fleet_hold_says_which_deploy_it_waits_for_then_holds_every_host_and_gives_them_up(tmp_path, monkeypatch, capsys):
    """The verb over SSH (faked): a host whose flock a step holds is asked again until the lease's holder shows."""
    import io
    import json
    import types
    answers = {"10.0.0.1": [(1, "the lock /run/fdeploy/shop.lock is held by pid 7 (user root: agent activate)"),
                            (1, "the deploy of stack proj/fleet (between two of its steps)"), (0, "")], "10.0.0.2": [(0, "")]}
    calls = []

    def run(argv, input=None, **kw):
        addr, verb, p = argv[-2].split("@")[1], argv[-1].split()[-1], json.loads(input)
        calls.append((addr, verb, p.get("WAIT"), p.get("TO")))
        if verb == "fleet-lease-end":
            return types.SimpleNamespace(returncode=0, stdout=json.dumps({"ok": True, "lease": "released"}), stderr="")
        rc, who = answers[addr].pop(0)
        out = {"ok": True, "seconds": 30} if rc == 0 else {"ok": False, "error": "another deploy of 'shop' is running on this server: %s; waited 0s. Wait" % who}
        return types.SimpleNamespace(returncode=rc, stdout=json.dumps(out), stderr="")
    monkeypatch.setattr(sys, "stdin", io.StringIO("end\n"))
    monkeypatch.setattr(time, "sleep", lambda s: None)
    t = {"user": "root", "port": 22, "hostKey": "ssh-ed25519 AAAA"}
    hosts = [{"address": a, "ssh": dict(t, host=a), "lease": "agent fleet-lease", "end": "agent fleet-lease-end"} for a in ("10.0.0.2", "10.0.0.1")]
    logs = []
    r = fleet_hold.fleet_hold(Host(root=str(tmp_path), run=run), {"APP": "shop", "DEPLOY": FDEPLOY, "TO": ME, "WAIT": 300, "HOSTS": hosts,
                                                                     "WHAT": "fdeploy rollback"}, logs.append, 120)
    assert r == {"hosts": {"10.0.0.1": "released", "10.0.0.2": "released"}}
    assert [c[:3] for c in calls[:5]] == [("10.0.0.1", "fleet-lease", 0), ("10.0.0.1", "fleet-lease", 0), ("10.0.0.1", "fleet-lease", 300),
                                         ("10.0.0.2", "fleet-lease", 0), ("10.0.0.1", "fleet-lease-end", None)], calls
    said = [line for line in logs if line.startswith("fdeploy: host")]
    assert said == ["fdeploy: host 10.0.0.1: another deploy of 'shop' is running on this server: the deploy of stack proj/fleet "
                    "(between two of its steps); waiting for it (up to 300s)…"]
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"lease": "held", "hosts": ["10.0.0.1", "10.0.0.2"]}
