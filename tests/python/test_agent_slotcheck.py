"""A slot's health check (agent slotcheck.py): pass on 2xx, fail at once on a 4xx or a process that
died (with why: killed by a signal, restarting, replaced), one retry of a 219/CGROUP start, and the
whole timeout only for a process that runs but does not answer. systemctl, journalctl and the
curl probe are replaced at the Host seam; time is a fake clock."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import slotcheck  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

APP = App(name="shop", root="/srv/shop", user="shop")
RUNNING = {"ActiveState": "active", "SubState": "running", "MainPID": "100", "ExecMainCode": "0", "ExecMainStatus": "0",
           "ExecStartPre": ""}


def props(**kw):
    return dict(RUNNING, **kw)


def test_died_running_is_alive():
    assert slotcheck.died(props(), "100") == ""


@pytest.mark.parametrize("state, pid, why", [
    (props(ActiveState="failed", SubState="failed", MainPID="0", ExecMainCode="1", ExecMainStatus="1"), "100",
     "its process exited and the unit is failed"),
    (props(ActiveState="inactive", SubState="dead", MainPID="0"), "100", "its process exited and the unit is inactive"),
    (props(ActiveState="activating", SubState="auto-restart", MainPID="0"), "100", "its process exited (systemd is restarting it)"),
    (props(MainPID="200"), "100", "its process 100 exited (now: 200)"),
    (props(MainPID="0"), "100", "its process 100 exited (now: none)"),
])
def test_died_says_why(state, pid, why):
    assert slotcheck.died(state, pid) == why


def test_killed_by_a_signal_is_not_the_codes_error():
    why = slotcheck.died(props(ActiveState="failed", ExecMainCode="2", ExecMainStatus="9"), "100")
    assert why.startswith("its process exited (killed by signal 9 (SIGKILL) from outside: ")
    assert "not an error the code raised" in why
    assert "SIG?" in slotcheck.killed_why(props(ExecMainCode="3", ExecMainStatus="99"))
    assert slotcheck.killed_why(props(ExecMainCode="1", ExecMainStatus="9")) == ""


def test_cgroup_failure_of_the_main_or_a_start_process():
    assert slotcheck.cgroup_failure(props(ExecMainStatus="219"))
    assert slotcheck.cgroup_failure(props(ExecStartPre="{ path=/x ; code=exited ; status=219/CGROUP }"))
    assert not slotcheck.cgroup_failure(props(ExecStartPre="{ path=/x ; status=2190 }"))
    assert not slotcheck.cgroup_failure(props(ExecMainStatus="1"))


def test_probe_result_code_last_body_bounded():
    assert slotcheck.probe_result(b"ok\n200") == ("200", "ok")
    assert slotcheck.probe_result(b"curl: (7) Couldn't connect\n000") == ("000", "curl: (7) Couldn't connect")
    assert slotcheck.probe_result(b"garbage") == ("000", "garbage")
    code, body = slotcheck.probe_result(b"a\0b\nline2\n" + b"x" * 5000 + b"\n500")
    assert code == "500" and body.startswith("ab line2 x") and len(body) <= 503


def test_probe_as_nginx_user_for_docker():
    argv = slotcheck.probe_argv(APP, "blue", "/health", "www-data")
    assert argv[:4] == ["runuser", "-u", "www-data", "--"] and "/run/fdeploy-shop/blue.sock" in argv
    assert slotcheck.probe_argv(APP, "blue", "/health", "")[0] == "curl"


class Server:
    """systemctl show answers from STATES (one per call, the last repeats); each probe answers the
    next of PROBES: (polls while running, output)."""

    def __init__(self, states, probes, journal="line 1\nTraceback (most recent call last):\nImportError: no module x\n"):
        self.states, self.probes, self.journal, self.now, self.restarts = list(states), list(probes), journal, 0.0, 0

    def run(self, argv, merge_output=False, input=None):
        if argv[0] == "journalctl" and argv[2].endswith(".socket"):
            return subprocess.CompletedProcess(argv, 0, "Failed to create listening socket (/run/fdeploy-shop/blue.sock): Address in use\n", "")
        if argv[:2] == ["systemctl", "show"]:
            s = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return subprocess.CompletedProcess(argv, 0, "".join("%s=%s\n" % kv for kv in s.items()), "")
        if argv[:2] == ["systemctl", "restart"]:
            self.restarts += 1
        if argv[0] == "journalctl":
            return subprocess.CompletedProcess(argv, 0, self.journal, "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def spawn(self, argv):
        polls, out = self.probes.pop(0) if len(self.probes) > 1 else self.probes[0]
        server = self

        class Probe:
            left, stopped = polls, False

            def poll(self):
                if self.left > 0:
                    self.left -= 1
                    return None
                return 0

            def stop(self):
                self.stopped = True

            def output(self):
                return out
        server.last = Probe()
        return server.last

    def sleep(self, s):
        self.now += s

    def check(self, timeout=10):
        host = Host(root="/nonexistent", run=self.run, spawn=self.spawn)
        logs = []
        ok = slotcheck.check_slot(host, APP, "blue", "/health", timeout, "", logs.append, clock=lambda: self.now, sleep=self.sleep)
        return ok, "\n".join(logs), host


def test_passes_on_2xx():
    ok, logs, _ = Server([props()], [(2, b"ok\n200")]).check()
    assert ok and logs == "health check of blue passed: 200"


def test_a_4xx_fails_at_once_naming_the_setting():
    s = Server([props()], [(0, b"not found\n404")])
    ok, logs, _ = s.check()
    assert not ok and s.now < 1
    assert "GET /health answered HTTP 404; the health path (flask-deploy:healthPath) must answer 2xx" in logs


def test_a_process_that_dies_while_probed_fails_at_once_with_the_journal():
    dead = props(ActiveState="failed", SubState="failed", MainPID="0")
    s = Server([props(), dead], [(10 ** 6, b"")])   # the probe would hang: systemd holds the socket
    ok, logs, _ = s.check(timeout=60)
    assert not ok and s.now < 1 and s.last.stopped
    assert "slot blue: its process exited and the unit is failed after 0s; not waiting out the 60s health timeout" in logs
    assert "--- last lines of the journal of fdeploy-shop@blue.service ---" in logs
    assert logs.endswith("app error: ImportError: no module x")


def test_a_process_that_runs_but_does_not_answer_gets_the_whole_timeout():
    s = Server([props()], [(0, b"curl: (28) timed out\n000")])
    ok, logs, _ = s.check(timeout=10)
    assert not ok and 10 <= s.now < 11
    assert "health check of slot blue (/health) failed within 10s: HTTP 000; body: curl: (28) timed out" in logs


def test_a_5xx_then_a_2xx_passes():
    ok, _, _ = Server([props()], [(0, b"boom\n502"), (0, b"ok\n200")]).check()
    assert ok


def test_a_219_cgroup_start_is_retried_once_then_checked_again():
    failed219 = props(ActiveState="failed", SubState="failed", MainPID="0", ExecMainStatus="219")
    s = Server([props(), failed219, props(MainPID="300")], [(5, b""), (0, b"ok\n200")])
    ok, logs, _ = s.check()
    assert ok and s.restarts == 1
    assert "status 219/CGROUP, not the app's doing" in logs


def test_a_second_219_fails():
    failed219 = props(ActiveState="failed", SubState="failed", MainPID="0", ExecMainStatus="219")
    s = Server([props(), failed219], [(5, b"")])
    ok, logs, _ = s.check()
    assert not ok and s.restarts == 1
    assert "the unit is failed" in logs


def test_a_mount_refusal_is_shown_as_not_started():
    dead = props(ActiveState="failed", SubState="failed", MainPID="0")
    s = Server([props(), dead], [(5, b"")], journal="error: refusing to mount /srv/shop/shared/x: a symlink\n")
    assert s.check()[1].endswith("not started: refusing to mount /srv/shop/shared/x: a symlink")


def test_a_service_whose_socket_did_not_start_shows_the_sockets_journal_too():
    dead = props(ActiveState="inactive", SubState="dead", MainPID="0")
    s = Server([props(), dead], [(10 ** 6, b"")], journal="Dependency failed for fdeploy-shop@blue.service - Flask app shop, slot blue (Gunicorn).\n")
    ok, logs, _ = s.check(timeout=60)
    assert not ok
    assert "--- last lines of the journal of fdeploy-shop@blue.socket ---\nFailed to create listening socket" in logs


def test_a_service_that_ran_shows_only_its_own_journal():
    dead = props(ActiveState="failed", SubState="failed", MainPID="0")
    _, logs, _ = Server([props(), dead], [(10 ** 6, b"")]).check(timeout=60)
    assert ".socket ---" not in logs
