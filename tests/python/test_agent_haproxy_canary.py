"""Strategy canary at the balancer (agent haproxy_canary.py): the canary host's share as HAProxy weights
set through the runtime API (a fake socket here), the weights before kept and put back (also by the next
lb-configure or lb-drain after a canary killed mid-step), and each step's gate on HAProxy's log lines
(journalctl faked at the Host seam)."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import haproxy, haproxy_canary  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

FRAG = {"APP": "shop", "SERVER_NAME": "_", "HEALTH_PATH": "/health", "HOSTS": ["10.0.0.2", "10.0.0.1", "10.0.0.3"]}
LIMITS = {"CANARY_MAX_ERROR_RATE": "0.05", "CANARY_MAX_P95_MS": "500", "CANARY_MIN_REQUESTS": "3"}


class Api:
    """HAProxy's runtime API: each server's weight; what was sent."""

    def __init__(self, weights=None):
        self.weights = dict(weights or {"h1": 1, "h2": 1, "h3": 1})
        self.sent = []

    def __call__(self, cmd):
        self.sent.append(cmd)
        words = cmd.split()
        if words[:2] == ["get", "weight"]:
            return "%d (initial 1)\n" % self.weights[words[2].split("/")[1]]
        if words[:2] == ["set", "server"] and words[3] == "weight":
            self.weights[words[2].split("/")[1]] = int(words[4])
            return "\n"
        if cmd == "show servers state":
            return "1\n# be_id be_name srv_id srv_name srv_addr\n"
        if cmd == "show stat":
            return "# pxname,svname,scur,status\n" + "".join("app_shop,%s,0,UP\n" % s for s in sorted(self.weights))
        return "\n"


def box(tmp_path, journal=""):
    (tmp_path / "etc/fdeploy/haproxy").mkdir(parents=True)
    (tmp_path / "etc/haproxy").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/haproxy/shop.json").write_text(json.dumps(FRAG))
    ran = []

    def run(argv, merge_output=False, input=None):
        ran.append(list(argv))
        if argv[0] == "journalctl":
            return subprocess.CompletedProcess(argv, 0, journal, "")
        return subprocess.CompletedProcess(argv, 0, "", "")
    return Host(root=str(tmp_path), run=run, which=lambda c: "/usr/sbin/" + c, clock=lambda: 0.0, sleep=lambda s: None), ran


def test_weights_give_the_canary_its_share_and_the_others_equal_parts_within_haproxys_range():
    assert haproxy_canary.weights(3, 1, 20) == [80, 40, 80]   # 40 / 200 = 20 %
    assert haproxy_canary.weights(2, 0, 5) == [5, 95]
    for n in (2, 3, 5, 10):
        for pct in (1, 5, 25, 50, 90, 99):
            w = haproxy_canary.weights(n, 0, pct)
            assert all(1 <= x <= 256 for x in w) and len(set(w[1:])) == 1
            assert abs(100.0 * w[0] / sum(w) - min(pct, 100.0 * 256 / (255 + n))) < 1, (n, pct, w)
    assert haproxy_canary.weights(3, 2, 0) == [1, 1, 0] and haproxy_canary.weights(3, 2, 100) == [0, 0, 1]


def test_a_step_sets_the_weights_by_the_runtime_api_keeping_the_ones_before_once(tmp_path):
    host, _ = box(tmp_path)
    api = Api()
    r = haproxy_canary.lb_canary(host, {"APP": "shop", "ACTION": "weights", "HOST": "10.0.0.1", "PERCENT": 20}, lambda s: None, 0, api)
    assert r["weights"] == {"h1": 80, "h2": 40, "h3": 80} == api.weights   # 10.0.0.1 is h2 (the order of servers)
    assert [c for c in api.sent if c.startswith("set server")] == ["set server app_shop/h1 weight 80", "set server app_shop/h2 weight 40",
                                                                   "set server app_shop/h3 weight 80"]
    kept = tmp_path / "etc/fdeploy/haproxy/shop.canary-weights"
    assert json.loads(kept.read_text()) == {"h1": 1, "h2": 1, "h3": 1} and oct(kept.stat().st_mode & 0o777) == "0o600"
    haproxy_canary.lb_canary(host, {"APP": "shop", "ACTION": "weights", "HOST": "10.0.0.1", "PERCENT": 50}, lambda s: None, 0, api)
    assert json.loads(kept.read_text()) == {"h1": 1, "h2": 1, "h3": 1}, "the weights before the canary, not the last step's"
    assert api.weights == {"h1": 50, "h2": 100, "h3": 50}
    assert (tmp_path / "etc/fdeploy/haproxy/server-state").exists(), "saved: a reload meanwhile keeps the step's weights"
    assert haproxy_canary.lb_canary(host, {"APP": "shop", "ACTION": "restore"}, lambda s: None, 0, api) == {"restored": True}
    assert api.weights == {"h1": 1, "h2": 1, "h3": 1} and not kept.exists()
    assert haproxy_canary.lb_canary(host, {"APP": "shop", "ACTION": "restore"}, lambda s: None, 0, api) == {"restored": False}


@pytest.mark.parametrize("verb", ["lb-configure", "lb-drain"])
def test_a_canary_killed_mid_step_gets_its_weights_back_from_the_next_configure_or_drain(tmp_path, verb):
    host, _ = box(tmp_path)
    api = Api({"h1": 3, "h2": 1, "h3": 1})   # a weight set by hand before the canary is what comes back
    haproxy_canary.lb_canary(host, {"APP": "shop", "ACTION": "weights", "HOST": "10.0.0.1", "PERCENT": 20}, lambda s: None, 0, api)
    assert api.weights == {"h1": 80, "h2": 40, "h3": 80}   # … and the deploy is killed here
    (tmp_path / "etc/haproxy/haproxy.cfg").write_text("")
    if verb == "lb-configure":
        haproxy.lb_configure(host, dict(FRAG), lambda s: None, 0, api)
    else:
        haproxy.lb_drain(host, {"APP": "shop", "HOST": "10.0.0.3", "WAIT": 0}, lambda s: None, 0, api)
    assert api.weights == {"h1": 3, "h2": 1, "h3": 1}
    assert not (tmp_path / "etc/fdeploy/haproxy/shop.canary-weights").exists()


def test_a_drain_without_a_canary_sets_no_weight(tmp_path):
    host, _ = box(tmp_path)
    api = Api()
    haproxy.lb_drain(host, {"APP": "shop", "HOST": "10.0.0.3", "WAIT": 0}, lambda s: None, 0, api)
    assert not [c for c in api.sent if "weight" in c]


def log_line(server, status, tr, ta=None, be="app_shop"):
    return ("10.213.0.1:50312 [07/Dec/2026:20:31:02.114] fdeploy %s/%s 0/0/1/%d/%d %d 312 - - ---- 4/4/2/1/0 0/0 \"GET /flaky HTTP/1.1\""
            % (be, server, tr, ta if ta is not None else tr + 1, status))


def test_gate_counts_the_canary_servers_requests_against_the_others_from_the_mark(tmp_path):
    journal = "\n".join([log_line("h2", 200, 12), log_line("h2", 200, 30), log_line("h2", 503, 8), log_line("h1", 200, 5),
                         log_line("h3", 500, 4), log_line("h3", 200, 6), log_line("<NOSRV>", 503, -1),
                         log_line("h2", 500, 3, be="app_blog"), "Proxy app_shop started.", "Server app_shop/h2 is UP"]) + "\n"
    host, ran = box(tmp_path, journal)
    r = haproxy_canary.lb_canary(host, dict(LIMITS, APP="shop", ACTION="gate", HOST="10.0.0.1", MARK="c:s=ab12;i=3f", MODE="final"),
                                 lambda s: None, 0, Api())
    assert r == {"verdict": 3, "summary": "new 3 requests, 1 5xx (33.3 %), p95 30 ms | old 3 requests, 1 5xx (33.3 %), p95 6 ms"}
    assert ran[-1] == ["journalctl", "-q", "-t", "haproxy", "-o", "cat", "--after-cursor", "s=ab12;i=3f"]


def test_gate_takes_the_total_time_when_the_server_never_answered_and_judges_p95_and_low_traffic(tmp_path):
    host, _ = box(tmp_path, "\n".join([log_line("h2", 200, 900), log_line("h2", 504, -1, 60000), log_line("h2", 200, 10)]) + "\n")
    gate = dict(LIMITS, APP="shop", ACTION="gate", HOST="10.0.0.1", MARK="start", MODE="final", CANARY_MAX_ERROR_RATE="0.5")
    assert haproxy_canary.lb_canary(host, gate, lambda s: None, 0, Api())["summary"].startswith("new 3 requests, 1 5xx (33.3 %), p95 60000 ms")
    assert haproxy_canary.lb_canary(host, gate, lambda s: None, 0, Api())["verdict"] == 4
    assert haproxy_canary.lb_canary(host, dict(gate, CANARY_MIN_REQUESTS="4"), lambda s: None, 0, Api())["verdict"] == 2


def test_mark_is_the_cursor_after_haproxys_last_line_or_start_with_none(tmp_path):
    host, ran = box(tmp_path, "10.213.0.1:1 [x] fdeploy app_shop/h1 0/0/0/1/1 200 …\n-- cursor: s=9f;i=1a2;b=77;m=3e;t=5f;x=11\n")
    assert haproxy_canary.lb_canary(host, {"APP": "shop", "ACTION": "mark"}, lambda s: None, 0, Api()) == {"mark": "c:s=9f;i=1a2;b=77;m=3e;t=5f;x=11"}
    assert ran[-1] == ["journalctl", "-q", "-t", "haproxy", "-n", "1", "-o", "cat", "--show-cursor"]
    empty, _ = box(tmp_path / "empty")
    assert haproxy_canary.lb_canary(empty, {"APP": "shop", "ACTION": "mark"}, lambda s: None, 0, Api()) == {"mark": "start"}


@pytest.mark.parametrize("params,words", [
    ({"ACTION": "weights", "HOST": "10.0.0.9", "PERCENT": 20}, "flask-deploy:servers: the balancer has no host 10.0.0.9"),
    ({"ACTION": "weights", "HOST": "10.0.0.1", "PERCENT": 120}, r"flask-deploy:canary\.steps"),
    ({"ACTION": "gate", "HOST": "10.0.0.1", "MARK": "c:a b", "MODE": "final"}, "MARK"),
    ({"ACTION": "gate", "HOST": "10.0.0.1", "MARK": "start", "MODE": "final", "CANARY_MIN_REQUESTS": "-1"}, r"flask-deploy:canary\.minRequests"),
    ({"ACTION": "jump"}, "ACTION"),
])
def test_bad_parameters_are_refused_before_any_weight_changes(tmp_path, params, words):
    host, _ = box(tmp_path)
    api = Api()
    with pytest.raises(AgentError, match=words):
        haproxy_canary.lb_canary(host, dict(LIMITS, APP="shop", **params), lambda s: None, 0, api)
    assert not [c for c in api.sent if c.startswith("set ")]
