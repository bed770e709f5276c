"""Strategy canary on a fleet (agent fleet_canary.py): the first host (sorted) switches and takes each
step's share at the balancer, gated per step; a tripped gate puts its weight and release back and fails
naming the gate and its numbers; after the last gated step the other hosts roll as usual. Fakes record
what happened; the clock is a fake one that sleep advances."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import fleet, fleet_canary  # noqa: E402

OLD, NEW = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
HOSTS = ["10.0.0.3", "10.0.0.1", "10.0.0.2"]
PARAMS = {"CANARY_STEPS": "20,50,100", "CANARY_STEP_SECONDS": "5", "CANARY_MIN_REQUESTS": "10", "CANARY_MAX_WAIT_SECONDS": "10",
          "CANARY_MAX_P95_MS": "500", "CANARY_MAX_ERROR_RATE": "0.05", "CANARY_LOW_TRAFFIC": "wait"}
PASS = (0, "new 30 requests, 0 5xx (0.0 %), p95 4 ms | old 120 requests, 0 5xx (0.0 %), p95 3 ms")


class FakeCanaryFleet:
    """Hosts and a balancer: GATES(step, mode, call) -> (verdict, numbers)."""

    def __init__(self, live, gates=lambda step, mode, n: PASS, fail_switch=(), unsafe=(), fail_prepare=()):
        self.live, self.gates, self.fail_switch, self.unsafe_ones = dict(live), gates, set(fail_switch), list(unsafe)
        self.fail_prepare = set(fail_prepare)
        self.events, self.weights, self.step, self.calls = [], None, 0, 0

    def previous(self, h):
        return self.live.get(h)

    def prepare(self, h):   # the rollout after the canary's steps (fleet.rollout): the other hosts first
        self.events.append(("prepare", h))
        if h in self.fail_prepare:
            raise fleet.HostFailed("the new release beside the live one (fleet-prepare) on %s failed: health check" % h)

    def tidy(self, h):
        self.events.append(("tidy", h))

    def drain(self, h):
        self.events.append(("drain", h))

    def switch(self, h):
        self.events.append(("switch", h))
        if h in self.fail_switch:
            raise fleet.HostFailed("the switch (activate) on %s failed: health check" % h)
        self.live[h] = NEW

    def ready(self, h, check):
        self.events.append(("ready", h, check))

    def back(self, h, release):
        self.events.append(("back", h, release))
        self.live[h] = release

    def unsafe(self, h):
        return self.unsafe_ones

    def share(self, h, pct):
        self.events.append(("share", h, pct))
        self.weights = (h, pct)

    def mark(self):
        self.step += 1
        self.events.append(("mark", self.step))
        return "c:%d" % self.step

    def gate(self, h, mark, mode):
        assert (h, mark) == (self.weights[0], "c:%d" % self.step)
        self.calls += 1
        return self.gates(self.step, mode, self.calls)

    def restore(self):
        self.events.append(("restore",))
        self.weights = None


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def run(f, params=PARAMS, hosts=HOSTS, rollback=False, logs=None):
    c = Clock()
    return fleet_canary.rollout(hosts, 1, NEW, f, dict(params), (logs if logs is not None else []).append, c, c.sleep, rollback)


def test_the_first_host_takes_each_steps_share_then_the_others_roll_with_equal_weights():
    f = FakeCanaryFleet({h: OLD for h in HOSTS})
    logs = []
    assert run(f, logs=logs) == {h: NEW for h in HOSTS}
    assert f.events[:8] == [("drain", "10.0.0.1"), ("switch", "10.0.0.1"), ("share", "10.0.0.1", 20), ("ready", "10.0.0.1", True),
                            ("mark", 1), ("share", "10.0.0.1", 50), ("mark", 2), ("restore",)]
    # the 100 % step: the other hosts as a plain rollout (prepared at once, then one by one), the canary host
    # neither prepared, drained nor switched again; every host tidied at the end
    rest = f.events[8:]
    assert sorted(rest[:2]) == [("prepare", "10.0.0.2"), ("prepare", "10.0.0.3")]
    assert rest[2:8] == [e for h in ["10.0.0.2", "10.0.0.3"] for e in (("drain", h), ("switch", h), ("ready", h, True))]
    assert sorted(rest[8:]) == [("tidy", h) for h in sorted(HOSTS)]
    assert any(line.startswith("canary step 1/3 (20 %) passed: new 30 requests") for line in logs), logs
    assert f.weights is None


def test_each_step_lasts_its_seconds_checked_every_second_then_judged():
    modes = []
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, gates=lambda step, mode, n: (modes.append((step, mode)), PASS)[1])
    run(f)
    assert modes == [(1, "early")] * 5 + [(1, "final")] + [(2, "early")] * 5 + [(2, "final")]


@pytest.mark.parametrize("verdict,words", [(3, r"the new release's 5xx share is over canary\.maxErrorRate \(0\.05\)"),
                                           (4, r"the new release's p95 is over canary\.maxP95Ms \(500 ms\)")])
def test_a_tripped_gate_puts_the_weights_and_the_first_host_back_and_fails_naming_the_gate_and_numbers(verdict, words):
    numbers = "new 30 requests, 9 5xx (30.0 %), p95 900 ms | old 120 requests, 0 5xx (0.0 %), p95 3 ms"
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, gates=lambda step, mode, n: (verdict, numbers) if mode == "final" else PASS)
    with pytest.raises(fleet.HostFailed) as e:
        run(f)
    msg = str(e.value)
    assert msg.startswith("the rollout (flask-deploy:servers) of %s stopped at host 10.0.0.1: canary aborted at step 1/3 (20 %%): " % NEW)
    assert __import__("re").search(words, msg), msg
    assert "[%s]" % numbers in msg and "host 10.0.0.1 is back on release %s at its weight before" % OLD in msg
    assert "went back to their previous release: 10.0.0.1; never switched: 10.0.0.2, 10.0.0.3" in msg
    assert all(len(line) < 400 for line in msg.split("\n"))
    assert f.live == {h: OLD for h in HOSTS}
    after = f.events[f.events.index(("mark", 1)) + 1:]
    assert after == [("restore",), ("back", "10.0.0.1", OLD), ("ready", "10.0.0.1", True)]   # weight first, then its release
    assert f.weights is None


def test_an_early_error_share_aborts_within_the_step():
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, gates=lambda step, mode, n: (3, "new 10 requests, 5 5xx (50.0 %)") if n >= 2 else PASS)
    with pytest.raises(fleet.HostFailed, match=r"canary aborted at step 1/3 \(20 %\)"):
        run(f)
    assert f.calls == 2


def test_too_little_traffic_waits_then_fails_naming_canary_max_wait_seconds():
    few = (2, "new 3 requests, 0 5xx (0.0 %), p95 4 ms | old 12 requests, 0 5xx (0.0 %), p95 3 ms")
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, gates=lambda step, mode, n: few if mode == "final" else PASS)
    with pytest.raises(fleet.HostFailed, match=r"fewer than 10 requests on the new release after waiting 10s more \(canary\.maxWaitSeconds\)"):
        run(f)
    passed = FakeCanaryFleet({h: OLD for h in HOSTS}, gates=lambda step, mode, n: few if mode == "final" else PASS)
    assert run(passed, params=dict(PARAMS, CANARY_LOW_TRAFFIC="pass")) == {h: NEW for h in HOSTS}


def test_a_gate_that_cannot_be_read_aborts_like_a_tripped_one():
    def broken(step, mode, n):
        raise fleet.HostFailed("the canary's gate (lb-canary) on the balancer failed (exit 1): journalctl could not read HAProxy's log")
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, gates=broken)
    with pytest.raises(fleet.HostFailed, match=r"canary aborted at step 1/3 \(20 %\): the gate check failed \(1\) \[.*journalctl"):
        run(f)
    assert f.live == {h: OLD for h in HOSTS} and f.weights is None


def test_a_first_host_that_fails_its_switch_keeps_its_release_and_is_put_back_in_the_balancer():
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, fail_switch={"10.0.0.1"})
    with pytest.raises(fleet.HostFailed, match="stopped at host 10.0.0.1: the switch"):
        run(f)
    assert f.events == [("drain", "10.0.0.1"), ("switch", "10.0.0.1"), ("restore",), ("ready", "10.0.0.1", False)]


def test_a_later_host_failing_after_the_canary_passed_sends_the_canary_host_back_too():
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, fail_switch={"10.0.0.3"})
    with pytest.raises(fleet.HostFailed) as e:
        run(f)
    assert "went back to their previous release: 10.0.0.1, 10.0.0.2" in str(e.value)
    assert f.live == {h: OLD for h in HOSTS}


@pytest.mark.parametrize("live,params,rollback,why", [
    ({"10.0.0.1": None, "10.0.0.2": None, "10.0.0.3": None}, PARAMS, False, "no release is live on 10.0.0.1 yet"),
    ({h: NEW for h in HOSTS}, PARAMS, False, "10.0.0.1 runs release %s already" % NEW),
    ({h: OLD for h in HOSTS}, PARAMS, True, "a rollback returns to a release that already ran"),
    ({h: OLD for h in HOSTS}, dict(PARAMS, CANARY_STEPS="100"), False, "canary.steps has no step before 100 %"),
    ({h: OLD for h in HOSTS}, PARAMS, False, "migrations applied for this release are not marked '-- fdeploy: canary-safe': 0003_drop.up.sql"),
])
def test_no_canary_to_run_rolls_host_by_host_and_says_why(live, params, rollback, why):
    f = FakeCanaryFleet(live, unsafe=["0003_drop.up.sql"] if why.startswith("migrations") else [])
    logs = []
    run(f, params=params, rollback=rollback, logs=logs)
    assert not [e for e in f.events if e[0] in ("share", "mark", "restore")]
    assert "canary: %s; the hosts switch one batch after another instead" % why in logs


def test_bad_canary_settings_are_refused_naming_the_setting_before_anything_changes():
    f = FakeCanaryFleet({h: OLD for h in HOSTS})
    with pytest.raises(fleet.AgentError, match=r"flask-deploy:canary\.maxErrorRate is 'x'"):
        run(f, params=dict(PARAMS, CANARY_MAX_ERROR_RATE="x"))
    assert f.events == []


def test_a_host_that_fails_its_prepare_after_the_steps_sends_the_canary_host_back():
    f = FakeCanaryFleet({h: OLD for h in HOSTS}, fail_prepare={"10.0.0.3"})
    with pytest.raises(fleet.HostFailed) as e:
        run(f)
    msg = str(e.value)
    assert msg.startswith("the rollout (flask-deploy:servers) of %s stopped at host 10.0.0.3: the new release beside the live one" % NEW), msg
    assert "went back to their previous release: 10.0.0.1; never switched: 10.0.0.2" in msg
    assert f.live == {h: OLD for h in HOSTS}
    assert ("back", "10.0.0.1", OLD) in f.events and not any(ev[0] == "switch" and ev[1] != "10.0.0.1" for ev in f.events)
