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

from fdeploy_agent import fleet, fleet_lease, lease, lock  # noqa: E402
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
