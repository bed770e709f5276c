"""The fleet switch's decisions (agent fleet.py): hosts switch in sorted order, batch by batch; a host
that fails stops the rollout and every host that had switched goes back to its previous release.
The hosts are fakes that record what happened to them."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import fleet  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

OLD, NEW = "aaaaaaaaaaaa", "bbbbbbbbbbbb"


class FakeFleet:
    def __init__(self, live, fail_switch=(), fail_ready=(), fail_prepare=()):
        self.live, self.fail_switch, self.fail_ready, self.fail_prepare = dict(live), set(fail_switch), set(fail_ready), set(fail_prepare)
        self.events = []
        self.idle = set()   # hosts whose new release runs prepared beside the live one

    def previous(self, h):
        return self.live.get(h)

    def prepare(self, h):
        self.events.append(("prepare", h))
        if h in self.fail_prepare:   # its own check failed: the idle slot stopped again
            raise fleet.HostFailed("the new release beside the live one (fleet-prepare) on %s failed: health check" % h)
        self.idle.add(h)

    def tidy(self, h):
        self.events.append(("tidy", h))
        self.idle.discard(h)

    def drain(self, h):
        self.events.append(("drain", h))

    def switch(self, h):
        self.events.append(("switch", h))
        if h in self.fail_switch:   # activate's own fallback: the host keeps what it ran
            raise fleet.HostFailed("the switch (activate) on %s failed: health check" % h)
        self.live[h] = NEW
        self.idle.discard(h)

    def ready(self, h, check):
        self.events.append(("ready", h, check))
        if check and h in self.fail_ready and self.live[h] == NEW:
            raise fleet.HostFailed("host %s failed its health check through its nginx" % h)

    def back(self, h, release):
        self.events.append(("back", h, release))
        self.live[h] = release


HOSTS = ["10.0.0.3", "10.0.0.1", "10.0.0.2"]


def test_every_host_switches_in_sorted_order_one_at_a_time():
    f = FakeFleet({h: OLD for h in HOSTS})
    assert fleet.rollout(HOSTS, 1, NEW, f, lambda s: None) == {h: NEW for h in HOSTS}
    assert f.events == [("prepare", h) for h in sorted(HOSTS)] + [
        e for h in sorted(HOSTS) for e in (("drain", h), ("switch", h), ("ready", h, True))] + [("tidy", h) for h in sorted(HOSTS)]


def test_host_2_fails_its_switch_host_1_goes_back_host_3_never_switched():
    f = FakeFleet({h: OLD for h in HOSTS}, fail_switch={"10.0.0.2"})
    logs = []
    with pytest.raises(fleet.HostFailed) as e:
        fleet.rollout(HOSTS, 1, NEW, f, logs.append)
    assert f.live == {h: OLD for h in HOSTS}
    assert ("back", "10.0.0.1", OLD) in f.events
    assert ("switch", "10.0.0.3") not in f.events and ("drain", "10.0.0.3") not in f.events
    assert ("ready", "10.0.0.2", False) in f.events   # the failed host serves its old release again
    msg = str(e.value)
    assert "stopped at host 10.0.0.2" in msg and "went back to their previous release: 10.0.0.1" in msg
    assert "never switched: 10.0.0.3" in msg


def test_a_host_that_fails_its_check_through_nginx_goes_back_too():
    f = FakeFleet({h: OLD for h in HOSTS}, fail_ready={"10.0.0.2"})
    with pytest.raises(fleet.HostFailed, match="stopped at host 10.0.0.2"):
        fleet.rollout(HOSTS, 1, NEW, f, lambda s: None)
    assert f.live == {h: OLD for h in HOSTS}
    assert [e for e in f.events if e[0] == "back"] == [("back", "10.0.0.2", OLD), ("back", "10.0.0.1", OLD)]


def test_batches_drain_switch_and_check_their_hosts_together():
    f = FakeFleet({h: OLD for h in HOSTS})
    fleet.rollout(HOSTS, 2, NEW, f, lambda s: None)
    events = [e for e in f.events if e[0] not in ("prepare", "tidy")]
    phases = [sorted(e[:2] for e in events[i:i + 2]) for i in (0, 2, 4)]
    assert phases == [[("drain", "10.0.0.1"), ("drain", "10.0.0.2")], [("switch", "10.0.0.1"), ("switch", "10.0.0.2")],
                      [("ready", "10.0.0.1"), ("ready", "10.0.0.2")]]
    assert [e[:2] for e in events[6:]] == [("drain", "10.0.0.3"), ("switch", "10.0.0.3"), ("ready", "10.0.0.3")]


def test_a_batch_with_a_failed_host_sends_its_switched_partner_and_earlier_batches_back():
    f = FakeFleet({h: OLD for h in HOSTS + ["10.0.0.4"]}, fail_switch={"10.0.0.4"})
    with pytest.raises(fleet.HostFailed, match="stopped at host 10.0.0.4") as e:
        fleet.rollout(HOSTS + ["10.0.0.4"], 2, NEW, f, lambda s: None)
    assert f.live == {h: OLD for h in HOSTS + ["10.0.0.4"]}
    assert "went back to their previous release: 10.0.0.1, 10.0.0.2, 10.0.0.3" in str(e.value)


def together(step, n=3):
    """A FakeFleet whose STEP (a method name) waits for N calls of it at once: only concurrent ones pass."""
    import threading
    barrier = threading.Barrier(n, timeout=5)

    class Together(FakeFleet):
        pass

    def waiting(self, h):
        barrier.wait()
        getattr(FakeFleet, step)(self, h)
    setattr(Together, step, waiting)
    return Together


def test_switches_of_a_batch_run_at_once():
    f = together("switch")({h: OLD for h in HOSTS})
    assert fleet.rollout(HOSTS, 3, NEW, f, lambda s: None) == {h: NEW for h in HOSTS}


def test_a_host_already_on_the_release_is_not_switched_again():
    f = FakeFleet({"10.0.0.1": NEW, "10.0.0.2": OLD})
    fleet.rollout(["10.0.0.1", "10.0.0.2"], 1, NEW, f, lambda s: None)
    assert ("switch", "10.0.0.1") not in f.events and ("switch", "10.0.0.2") in f.events


def test_every_host_is_prepared_at_once_before_the_first_drain():
    f = together("prepare")({h: OLD for h in HOSTS})
    logs = []
    assert fleet.rollout(HOSTS, 1, NEW, f, logs.append) == {h: NEW for h in HOSTS}
    assert sorted(f.events[:3]) == [("prepare", h) for h in sorted(HOSTS)] and f.events[3] == ("drain", "10.0.0.1")
    assert any(line.startswith("fleet: every host: read ") and ", prepare " in line for line in logs)


def test_a_new_host_or_one_on_the_release_is_not_prepared_but_every_host_is_tidied():
    f = FakeFleet({"10.0.0.1": None, "10.0.0.2": NEW, "10.0.0.3": OLD})
    fleet.rollout(HOSTS, 1, NEW, f, lambda s: None)
    assert [e for e in f.events if e[0] == "prepare"] == [("prepare", "10.0.0.3")]
    # one on the release already may run the old slot a rollout killed before its tidy left
    assert sorted(e for e in f.events if e[0] == "tidy") == [("tidy", h) for h in sorted(HOSTS)]


def test_a_host_that_fails_its_prepare_stops_the_rollout_before_any_drain_and_the_others_stop_theirs():
    f = FakeFleet({h: OLD for h in HOSTS}, fail_prepare={"10.0.0.2"})
    with pytest.raises(fleet.HostFailed) as e:
        fleet.rollout(HOSTS, 1, NEW, f, lambda s: None)
    assert not [x for x in f.events if x[0] in ("drain", "switch", "ready", "back")]
    assert sorted(x for x in f.events if x[0] == "tidy") == [("tidy", h) for h in sorted(HOSTS)]
    assert f.idle == set() and f.live == {h: OLD for h in HOSTS}
    msg = str(e.value)
    assert msg.startswith("the rollout (flask-deploy:servers) of %s stopped at host 10.0.0.2: the new release beside" % NEW)
    assert "went back to their previous release: none; never switched: 10.0.0.1, 10.0.0.3" in msg


def test_a_failed_switch_tidies_every_prepared_host_after_the_switched_ones_went_back():
    f = FakeFleet({h: OLD for h in HOSTS}, fail_switch={"10.0.0.2"})
    with pytest.raises(fleet.HostFailed, match="stopped at host 10.0.0.2"):
        fleet.rollout(HOSTS, 1, NEW, f, lambda s: None)
    assert f.idle == set() and f.live == {h: OLD for h in HOSTS}
    tidied = [i for i, x in enumerate(f.events) if x[0] == "tidy"]
    assert sorted(f.events[i] for i in tidied) == [("tidy", h) for h in sorted(HOSTS)]
    assert f.events.index(("back", "10.0.0.1", OLD)) < min(tidied)   # the old slot it went back to ran until then


def test_a_new_host_has_nothing_to_go_back_to():
    f = FakeFleet({"10.0.0.1": None, "10.0.0.2": None}, fail_switch={"10.0.0.2"})
    with pytest.raises(fleet.HostFailed, match="went back to their previous release: none"):
        fleet.rollout(["10.0.0.1", "10.0.0.2"], 1, NEW, f, lambda s: None)
    assert not [e for e in f.events if e[0] == "back"]
    assert ("ready", "10.0.0.1", False) in f.events   # no site before its first switch: activate's own check counts


def test_ssh_fleet_runs_the_deploys_verbs_with_the_pinned_key(tmp_path):
    ran = []

    def run(argv, merge_output=False, input=None):
        ran.append((argv, input))
        cmd = argv[-1]
        if cmd.endswith("fleet-lease"):
            return subprocess.CompletedProcess(argv, 0, json.dumps({"deploy": "proj/dev", "seconds": 30}) + "\n", "")
        if cmd.endswith("state-read"):
            return subprocess.CompletedProcess(argv, 0, json.dumps({"release": OLD, "ok": True}) + "\n", "")
        if cmd.endswith("fleet-prepare") and not json.loads(input).get("TIDY"):
            return subprocess.CompletedProcess(argv, 0, json.dumps({"slot": "blue", "ok": True}) + "\n", "")
        if "activate" in cmd and json.loads(input)["RELEASE_ID"] == NEW and argv[-2] == "root@10.0.0.2":
            return subprocess.CompletedProcess(argv, 1, json.dumps({"ok": False, "error": "unhealthy"}) + "\n", "error: unhealthy\n")
        return subprocess.CompletedProcess(argv, 0, "{\"ok\": true}\n", "")

    ssh = {"port": 22, "user": "root", "hostKey": "ssh-ed25519 AAAAkey"}
    params = {
        "APP": "shop", "RELEASE_ID": NEW, "BATCH_SIZE": 1, "HEALTH_TIMEOUT": 5, "DRAIN_SECONDS": 3,
        "HOSTS": [{"address": a, "ssh": dict(ssh, host=a), "read": "python3 agent state-read", "activate": "python3 agent activate",
                   "lease": "python3 agent fleet-lease", "prepare": "python3 agent fleet-prepare", "params": json.dumps({"APP": "shop", "RELEASE_ID": NEW, "DEPLOY": "proj/dev"})} for a in ("10.0.0.1", "10.0.0.2")],
        "BALANCER": {"ssh": dict(ssh, host="10.0.0.9"), "lb-drain": "python3 agent lb-drain", "lb-ready": "python3 agent lb-ready"},
    }
    with pytest.raises(AgentError, match="stopped at host 10.0.0.2.*unhealthy"):
        fleet.fleet_rollout(Host(root=str(tmp_path), run=run), params, lambda s: None, 0)
    backs = [json.loads(i) for a, i in ran if a[-1].endswith("activate") and json.loads(i)["RELEASE_ID"] == OLD]
    assert backs == [{"APP": "shop", "RELEASE_ID": OLD, "DEPLOY": "proj/dev", "ROLLBACK": 1, "FLEET_BACK": 1}]
    # every host's lease, in sorted order, before the first host drained
    verbs = [(a[-1].rsplit(" ", 1)[-1], a[-2]) for a, _ in ran]
    assert verbs[3:5] == [("fleet-lease", "root@10.0.0.1"), ("fleet-lease", "root@10.0.0.2")]   # after the connections
    assert [json.loads(i) for a, i in ran if a[-1].endswith("fleet-lease")][0] == {"APP": "shop", "DEPLOY": "proj/dev"}
    assert all("StrictHostKeyChecking=yes" in a for a, _ in ran)
    drains = [json.loads(i) for a, i in ran if a[-1].endswith("lb-drain")]
    assert drains == [{"APP": "shop", "HOST": "10.0.0.1", "WAIT": 3}, {"APP": "shop", "HOST": "10.0.0.2", "WAIT": 3}]
    # each host's turn makes the slot its prepare answered live; at the end every host stops its other slots
    turns = [(a[-2], json.loads(i).get("PREPARED")) for a, i in ran if a[-1].endswith("activate") and json.loads(i)["RELEASE_ID"] == NEW]
    assert turns == [("root@10.0.0.1", "blue"), ("root@10.0.0.2", "blue")]
    tidy = sorted((a[-2], json.loads(i)) for a, i in ran if a[-1].endswith("fleet-prepare") and json.loads(i).get("TIDY"))
    assert tidy == [(d, {"APP": "shop", "RELEASE_ID": NEW, "DEPLOY": "proj/dev", "TIDY": 1}) for d in ("root@10.0.0.1", "root@10.0.0.2")]


def test_bad_batch_size_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(AgentError, match="rollout.batchSize"):
        fleet.fleet_rollout(Host(root=str(tmp_path)), {"RELEASE_ID": NEW, "BATCH_SIZE": 0, "HOSTS": []}, lambda s: None, 0)


def test_ssh_to_a_host_is_bounded_connecting_and_mid_step():
    argv = fleet.ssh_argv({"host": "10.0.0.2", "user": "root", "port": 22}, "/k", "python3 agent activate")
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert opts["ConnectTimeout"] == str(fleet.CONNECT_SECONDS)
    # a host that dies mid-step (its packets gone, no FIN) ends the call after ServerAliveInterval x CountMax
    assert int(opts["ServerAliveInterval"]) * int(opts["ServerAliveCountMax"]) == fleet.SILENT_SECONDS <= 30


@pytest.mark.parametrize("stderr", [
    "ssh: connect to host 10.0.0.2 port 22: No route to host",
    "ssh: connect to host 10.0.0.2 port 22: Connection timed out",
    "ssh: connect to host 10.0.0.2 port 22: Connection refused",
    "Timeout, server 10.0.0.2 not responding.",
    "client_loop: send disconnect: Broken pipe",
])
def test_a_host_gone_fails_its_step_naming_it_and_the_bound(tmp_path, stderr):
    def run(argv, merge_output=False, input=None):
        return subprocess.CompletedProcess(argv, 255, "", stderr + "\n")
    params = {"APP": "shop", "HOSTS": [{"address": "10.0.0.2", "ssh": {"host": "10.0.0.2", "user": "root", "hostKey": "ssh-ed25519 AAAAkey"},
                                        "activate": "python3 agent activate", "params": "{}"}]}
    f = fleet.SshFleet(Host(root=str(tmp_path), run=run), params, str(tmp_path), lambda s: None)
    with pytest.raises(fleet.HostFailed) as e:
        f.switch("10.0.0.2")
    msg = str(e.value)
    assert msg.startswith("the switch (activate) on 10.0.0.2 (flask-deploy:servers) failed: the host did not answer over SSH")
    assert stderr in msg and "15 s" in msg


def test_other_ssh_failures_keep_their_own_message(tmp_path):
    def run(argv, merge_output=False, input=None):
        return subprocess.CompletedProcess(argv, 255, "", "root@10.0.0.2: Permission denied (publickey).\n")
    params = {"APP": "shop", "HOSTS": [{"address": "10.0.0.2", "ssh": {"host": "10.0.0.2", "user": "root", "hostKey": "ssh-ed25519 AAAAkey"},
                                        "activate": "python3 agent activate", "params": "{}"}]}
    f = fleet.SshFleet(Host(root=str(tmp_path), run=run), params, str(tmp_path), lambda s: None)
    with pytest.raises(fleet.HostFailed, match=r"failed \(exit 255\): root@10.0.0.2: Permission denied"):
        f.switch("10.0.0.2")


def fleet_params(addresses, balancer=True):
    ssh = {"port": 22, "user": "root", "hostKey": "ssh-ed25519 AAAAkey"}
    return {"APP": "shop", "RELEASE_ID": NEW, "BATCH_SIZE": 1, "HEALTH_TIMEOUT": 5, "DRAIN_SECONDS": 3,
            "HOSTS": [{"address": a, "ssh": dict(ssh, host=a), "read": "python3 agent state-read", "activate": "python3 agent activate",
                       "lease": "python3 agent fleet-lease", "prepare": "python3 agent fleet-prepare",
                       "params": json.dumps({"APP": "shop", "RELEASE_ID": NEW, "DEPLOY": "proj/dev"})} for a in addresses],
            "BALANCER": {"ssh": dict(ssh, host="10.0.0.9"), "lb-drain": "python3 agent lb-drain", "lb-ready": "python3 agent lb-ready"} if balancer else None}


def answers(argv, input):
    cmd = argv[-1]
    if cmd.endswith("fleet-lease"):
        return subprocess.CompletedProcess(argv, 0, json.dumps({"seconds": 30}) + "\n", "")
    if cmd.endswith("state-read"):
        return subprocess.CompletedProcess(argv, 0, json.dumps({"release": OLD}) + "\n", "")
    return subprocess.CompletedProcess(argv, 0, "{\"ok\": true}\n", "")


def opts(argv):
    return dict(argv[i + 1].split("=", 1) for i, x in enumerate(argv) if x == "-o")


def test_each_host_has_one_connection_for_the_whole_rollout_ended_with_it(tmp_path, monkeypatch):
    ran, folders = [], []

    def run(argv, merge_output=False, input=None):
        ran.append(argv)
        return answers(argv, input)
    real = fleet.tempfile.TemporaryDirectory

    def tmp(prefix=""):
        d = real(prefix=prefix, dir=str(tmp_path))
        folders.append(d.name)
        return d
    monkeypatch.setattr(fleet.tempfile, "TemporaryDirectory", tmp)
    fleet.fleet_rollout(Host(root=str(tmp_path), run=run), fleet_params(["10.0.0.1", "10.0.0.2"]), lambda s: None, 0)
    calls = [a for a in ran if "-O" not in a]
    paths = {}
    for a in calls:
        o = opts(a)
        assert o["ControlMaster"] == "auto" and os.path.dirname(o["ControlPath"]) == folders[0]
        assert int(o["ControlPersist"]) <= 30
        paths.setdefault(a[-2], set()).add(o["ControlPath"])
    assert sorted(paths) == ["root@10.0.0.1", "root@10.0.0.2", "root@10.0.0.9"] and all(len(p) == 1 for p in paths.values())
    assert len({next(iter(p)) for p in paths.values()}) == 3   # one connection per host, the balancer its own
    exits = [(a[-1], opts(a)["ControlPath"]) for a in ran if "-O" in a and a[a.index("-O") + 1] == "exit"]
    assert sorted(exits) == sorted((d, next(iter(p))) for d, p in paths.items())
    assert ran[-3:] == [a for a in ran if "-O" in a]   # after every step
    # opened all at once before the leases (taken one by one), each by a call that runs nothing
    assert sorted(a[-2] for a in ran[:3]) == sorted(paths) and all(a[-1] == "true" for a in ran[:3])


@pytest.mark.parametrize("master_alive, expect", [
    (False, r"the switch \(activate\) on 10.0.0.2 \(flask-deploy:servers\) failed: the host did not answer over SSH\nits connection ended"),
    (True, r"the switch \(activate\) on 10.0.0.2 \(flask-deploy:servers\) failed \(exit 255\)"),
])
def test_a_call_ended_without_a_word_is_the_host_gone_only_when_its_connection_is(tmp_path, master_alive, expect):
    def run(argv, merge_output=False, input=None):
        if "-O" in argv:
            return subprocess.CompletedProcess(argv, 0 if master_alive else 255, "", "")
        return subprocess.CompletedProcess(argv, 255, "", "")   # the master died of unanswered keepalives: its client says nothing
    f = fleet.SshFleet(Host(root=str(tmp_path), run=run), fleet_params(["10.0.0.2"]), str(tmp_path), lambda s: None)
    with pytest.raises(fleet.HostFailed, match=expect):
        f.switch("10.0.0.2")


def test_a_host_gone_mid_rollout_is_not_called_again_to_tidy_its_slots(tmp_path):
    ran = []

    def run(argv, merge_output=False, input=None):
        ran.append(argv)
        if argv[-2] == "root@10.0.0.2" and argv[-1].endswith("activate"):
            return subprocess.CompletedProcess(argv, 255, "", "Timeout, server 10.0.0.2 not responding.\n")
        if argv[-1].endswith("fleet-prepare") and not json.loads(input).get("TIDY"):
            return subprocess.CompletedProcess(argv, 0, json.dumps({"slot": "blue"}) + "\n", "")
        return answers(argv, input)
    logs = []
    with pytest.raises(fleet.HostFailed, match="stopped at host 10.0.0.2: .*did not answer over SSH"):
        fleet.fleet_rollout(Host(root=str(tmp_path), run=run), fleet_params(["10.0.0.1", "10.0.0.2"]), logs.append, 0)
    after = ran[[i for i, a in enumerate(ran) if a[-2] == "root@10.0.0.2" and a[-1].endswith("activate")][0] + 1:]
    assert not [a for a in after if a[-2] == "root@10.0.0.2" or a[-1] == "root@10.0.0.2" and "exit" not in a]
    assert "host 10.0.0.2 did not answer: its slots beside the live one are left" in logs


def test_the_balancers_drains_and_readies_go_through_one_session(tmp_path, monkeypatch):
    """With the stack's lb-session line, every drain and ready is one request to one process on the balancer."""
    import textwrap
    script = tmp_path / "standin.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys
        log = open(sys.argv[1], "a")
        log.write(json.dumps({"pid": os.getpid(), "first": json.loads(sys.stdin.readline())}) + "\\n")
        for line in sys.stdin:
            log.write(line)
            log.flush()
            print(json.dumps({"ok": True}), flush=True)
    """))
    seen = tmp_path / "seen"
    started = []

    def start(argv):
        started.append(argv)
        return lb_session_popen([sys.executable, str(script), str(seen)])
    from fdeploy_agent import lb_session
    lb_session_popen = lb_session.popen
    monkeypatch.setattr(lb_session, "popen", start)
    ran = []

    def run(argv, merge_output=False, input=None):
        ran.append(argv)
        return answers(argv, input)
    params = fleet_params(["10.0.0.1", "10.0.0.2"])
    params["BALANCER"]["lb-session"] = "python3 agent lb-session"
    fleet.fleet_rollout(Host(root=str(tmp_path), run=run), params, lambda s: None, 0)
    assert len(started) == 1 and started[0][-1] == "python3 agent lb-session" and started[0][-2] == "root@10.0.0.9"
    assert opts(started[0])["ControlMaster"] == "auto"   # over the balancer's one connection
    lines = [json.loads(x) for x in seen.read_text().splitlines()]
    assert lines[0]["first"] == {"APP": "shop"}
    assert [(x["verb"], x["params"]["HOST"]) for x in lines[1:]] == [
        ("lb-drain", "10.0.0.1"), ("lb-ready", "10.0.0.1"), ("lb-drain", "10.0.0.2"), ("lb-ready", "10.0.0.2")]
    assert lines[1]["params"]["WAIT"] == 3 and lines[2]["params"]["WAIT_UP"] == 5
    assert not [a for a in ran if a[-1].endswith(("lb-drain", "lb-ready"))]   # no call of its own
