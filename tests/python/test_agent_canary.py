"""Strategy canary's decisions (agent canary.py): whether a deploy can be a canary or goes live
blue-green and why, its parameters checked, and each step's gate on nginx's upstream log."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import canary, cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

OLD, NEW, LIVE = "/run/fdeploy-shop/blue.sock", "/run/fdeploy-shop/green.sock", "/run/fdeploy-shop/live.sock"
GOOD = {"CANARY_STEPS": "10,50,100", "CANARY_STEP_SECONDS": "30", "CANARY_MIN_REQUESTS": "2", "CANARY_MAX_WAIT_SECONDS": "0",
        "CANARY_MAX_P95_MS": "100", "CANARY_MAX_ERROR_RATE": "0.1", "CANARY_LOW_TRAFFIC": "wait"}


def line(status, addr, seconds):
    return "1733390000.123\t%d\tunix:%s\t%d\t%s\t%s" % (status, addr, status, seconds, seconds)


def gate(lines, mode, offset=0, max_err=0.1, max_p95=100, min_req=2):
    data = "".join(x + "\n" for x in lines).encode()[offset:]
    return canary.gate(data, OLD, NEW, max_err, max_p95, min_req, mode)


def test_gate_counts_each_slots_requests_5xx_and_p95_and_passes_a_healthy_step():
    rc, out = gate([line(200, NEW, "0.010"), line(200, NEW, "0.020"), line(200, OLD, "0.005"), line(200, LIVE, "0.007")], "final")
    assert rc == 0
    assert out == "new 2 requests, 0 5xx (0.0 %), p95 20 ms | old 2 requests, 0 5xx (0.0 %), p95 7 ms"


def test_gate_trips_on_5xx_share_too_few_requests_and_slow_p95():
    assert gate([line(500, NEW, "0.01"), line(200, NEW, "0.01")], "final")[0] == 3
    assert gate([line(200, NEW, "0.01")], "final")[0] == 2
    assert gate([line(200, NEW, "0.5"), line(200, NEW, "0.5")], "final")[0] == 4
    # errors of the old release are its own
    assert gate([line(500, OLD, "0.01"), line(200, NEW, "0.01"), line(200, NEW, "0.01")], "final")[0] == 0


def test_gate_early_trips_only_on_the_error_share_and_only_with_enough_requests():
    assert gate([line(500, NEW, "0.01")], "early")[0] == 0
    assert gate([line(500, NEW, "0.01"), line(500, NEW, "0.01")], "early")[0] == 3
    assert gate([line(200, NEW, "0.5"), line(200, NEW, "0.5")], "early")[0] == 0


def test_gate_counts_the_last_slot_tried_lines_after_the_offset_and_no_upstream_not_at_all():
    retried = "1733390000.5\t200\tunix:%s, unix:%s\t502, 200\t0.000, 0.004\t0.005" % (NEW, OLD)
    before = line(500, NEW, "0.01")
    rc, out = gate([before, retried, line(200, NEW, "0.01"), line(200, NEW, "0.01"), "1733390000.6\t503\t-\t-\t-\t0.000",
                    line(500, NEW, "0.01")[:20]], "final", offset=len(before) + 1)   # and a line still being written
    assert rc == 0
    assert out.startswith("new 2 requests, 0 5xx ") and out.endswith("| old 1 requests, 0 5xx (0.0 %), p95 4 ms")


# --- the verbs, on a temporary server root; systemctl replaced at the Host seam

@pytest.fixture
def root(tmp_path):
    r = app_root(tmp_path, "srv/shop/slots", "srv/shop/migrations/m2", "etc/nginx/sites-available", "etc/nginx/sites-enabled",
                 "var/log/nginx")
    (r / "srv/shop/slots/live").write_text("blue\n")
    (r / "srv/shop/migrations/current").symlink_to(r / "srv/shop/migrations/m2")
    site = r / "etc/nginx/sites-available/fdeploy-shop.conf"
    site.write_text("upstream x {\n  include /etc/fdeploy/shop/upstream.conf;\n}\n")
    (r / "etc/nginx/sites-enabled/fdeploy-shop.conf").symlink_to(site)
    history(r, 1)
    return r


def history(root, schema):
    (root / "srv/shop/history.jsonl").write_text(json.dumps(
        {"time": "2026-01-01T00:00:00Z", "release": "a" * 12, "status": "live", "strategy": "canary", "schema": schema}) + "\n")


def migration(root, name, text):
    (root / "srv/shop/migrations/m2" / name).write_text(text)


def agent(root, verb, ok=True, active=True, show="", **params):
    def fake(argv, merge_output=False, input=None):
        rc = 0 if active or argv[:2] != ["systemctl", "is-active"] else 3
        return subprocess.CompletedProcess(argv, rc, show if argv[:2] == ["systemctl", "show"] else "", "")

    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(dict({"APP": "shop"}, **params))), stdout=out, stderr=err,
                  host=Host(root=str(root), run=fake))
    assert (rc == 0) == ok, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


def test_plan_a_canary_when_the_live_slot_runs_behind_the_splitting_site(root):
    migration(root, "0001_a.up.sql", "")
    migration(root, "0002_b.up.sql", "-- fdeploy: canary-safe\r\nALTER TABLE t ADD c;\n")   # CRLF, as bash's [[:space:]]
    assert agent(root, "canary-plan", **GOOD)[0]["fallback"] == ""


@pytest.mark.parametrize("change, why", [
    (lambda r: (r / "srv/shop/slots/live").unlink(), "no release is live yet"),
    (lambda r: None, "the live slot blue does not run"),
    (lambda r: (r / "etc/nginx/sites-enabled/fdeploy-shop.conf").unlink(), "does not split traffic yet"),
    (lambda r: (r / "etc/nginx/sites-available/fdeploy-shop.conf").write_text("server {}\n"), "does not split traffic yet"),
    (lambda r: migration(r, "0002_b.up.sql", "ALTER TABLE t ADD c; -- fdeploy: canary-safe\n-- fdeploy: canary-safety\n"),
     "not marked '-- fdeploy: canary-safe': 0002_b.up.sql"),
])
def test_plan_falls_back_to_blue_green_and_says_why(root, change, why):
    change(root)
    active = "does not run" not in why
    assert why in agent(root, "canary-plan", active=active, **GOOD)[0]["fallback"]


def test_plan_a_rollback_goes_blue_green(root):
    assert "a rollback" in agent(root, "canary-plan", ROLLBACK="1", **GOOD)[0]["fallback"]


def test_plan_a_migration_at_or_below_the_live_schema_is_not_asked_about(root):
    migration(root, "0001_a.up.sql", "")
    assert agent(root, "canary-plan", **GOOD)[0]["fallback"] == ""


def test_plan_bad_parameters_name_the_setting(root):
    out, err = agent(root, "canary-plan", ok=False, **dict(GOOD, CANARY_LOW_TRAFFIC="maybe"))
    assert out["error"].startswith("the canary setting flask-deploy:canary.lowTraffic is 'maybe'")
    # a fallback needs no canary parameters
    (root / "srv/shop/slots/live").unlink()
    assert agent(root, "canary-plan")[0]["fallback"] == "no release is live yet"


def test_gate_verb_reads_the_log_from_the_offset_with_the_live_and_new_slots_sockets(root):
    before = line(500, NEW, "0.01") + "\n"
    (root / "var/log/nginx/fdeploy-shop.upstream.log").write_text(before + line(200, NEW, "0.01") + "\n" + line(200, NEW, "0.02") + "\n"
                                                                 + line(200, OLD, "0.01") + "\n")
    out, _ = agent(root, "canary-gate", SLOT="green", OFFSET=str(len(before)), MODE="final", **GOOD)
    assert out["verdict"] == 0 and out["line"] == "0 " + out["summary"]
    assert out["summary"].startswith("new 2 requests, 0 5xx") and "old 1 requests" in out["summary"]
    assert agent(root, "canary-gate", SLOT="green", OFFSET="0", MODE="final", **GOOD)[0]["verdict"] == 3


def test_gate_verb_without_a_log_yet_counts_nothing(root):
    assert agent(root, "canary-gate", SLOT="green", OFFSET="0", MODE="final", **GOOD)[0]["verdict"] == 2


@pytest.mark.parametrize("bad", [{"SLOT": "../x"}, {"OFFSET": "-1"}, {"MODE": "late"}, {"CANARY_MAX_P95_MS": "1; rm"}])
def test_gate_verb_refuses_bad_parameters(root, bad):
    agent(root, "canary-gate", ok=False, **dict(dict(GOOD, SLOT="green", OFFSET="0", MODE="final"), **bad))


def test_gate_verb_early_aborts_when_the_new_slots_process_died(root):
    show = "ActiveState=activating\nSubState=auto-restart\nMainPID=0\nExecMainCode=2\nExecMainStatus=9\n"
    out, _ = agent(root, "canary-gate", show=show, SLOT="green", OFFSET="0", MODE="early", **GOOD)
    assert out["verdict"] == 5 and out["line"].startswith("5 its process exited (killed by signal 9 (SIGKILL)")
    # the final verdict is the log's
    assert agent(root, "canary-gate", show=show, SLOT="green", OFFSET="0", MODE="final", **GOOD)[0]["verdict"] == 2
