"""supervise: every remote step runs under it (remote-script.ts). It passes stdin, stdout, stderr and
the exit status through; it stops the step's whole process group when the time limit hits or the
SSH session ends (its stdout/stderr readers are gone), which releases the step's deploy lock; it
leaves alone what the step started outside its group."""
import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT = os.path.join(ROOT, "components", "scripts", "agent")
sys.path.insert(0, AGENT)

from fdeploy_agent import supervise  # noqa: E402


def supervised(limit, script, **kw):
    argv = [sys.executable, "-I", "-B", AGENT, "supervise", str(limit), "release-commands-run", "timeouts.releaseCommands", "--",
            "bash", "-c", script]
    return argv, kw


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def wait_gone(pid, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_passes_stdin_stdout_stderr_and_the_exit_status_through():
    argv, _ = supervised(60, 'cat; echo "to stderr $FDEPLOY_STEP_LIMIT" >&2; exit 3')
    r = subprocess.run(argv, input='{"APP": "x"}\n', capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (3, '{"APP": "x"}\n', "to stderr 60\n")


def test_a_step_killed_by_a_signal_exits_like_a_shell_says():
    argv, _ = supervised(60, "kill -9 $$")
    assert subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30).returncode == 137


def test_the_time_limit_stops_the_whole_group_and_names_step_limit_and_setting(tmp_path):
    pids = tmp_path / "pids"
    # a background child, and a shell that ignores SIGTERM: SIGKILL after the grace
    argv, _ = supervised(1, "sleep 1000 & echo $! > %s; echo $$ >> %s; trap '' TERM; while :; do sleep 0.1; done" % (pids, pids))
    start = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, FDEPLOY_SUPERVISE_GRACE="1"))
    took = time.monotonic() - start
    assert r.returncode == 124, r.stderr
    assert "step release-commands-run did not finish within its time limit of 1s (config timeouts.releaseCommands)" in r.stderr
    assert "pulumi config set --path timeouts.releaseCommands" in r.stderr
    assert took < 1 + 1 + 3, took
    for pid in map(int, pids.read_text().split()):
        assert wait_gone(pid, 2), "pid %d survived" % pid


def test_the_end_of_the_ssh_session_stops_the_step_and_frees_its_lock(tmp_path):
    lock = tmp_path / "app.lock"
    pidfile = tmp_path / "pid"
    # like lib.sh with_deploy_lock: the step itself holds the lock on fd 9, then hangs
    argv, _ = supervised(600, "exec 9>%s; flock 9; sleep 1000 & echo $! > %s; wait" % (lock, pidfile))
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.05)
    sleeper = int(pidfile.read_text())
    fd = os.open(str(lock), os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    p.stdout.close()   # what sshd does when the client is gone: the pipes' read ends close
    p.stderr.close()
    start = time.monotonic()
    assert p.wait(timeout=15) == 129
    assert wait_gone(sleeper, 2)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # released
    os.close(fd)
    assert time.monotonic() - start < 3


def test_processes_outside_the_steps_group_survive(tmp_path):
    pidfile = tmp_path / "pid"
    argv, _ = supervised(1, "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > %s; sleep 1000" % pidfile)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 124
    pid = int(pidfile.read_text())
    try:
        assert alive(pid), "a process in its own session (like a systemd unit) is not the step's"
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_signal_to_the_supervisor_stops_the_step(tmp_path):
    pidfile = tmp_path / "pid"
    argv, _ = supervised(600, "sleep 1000 & echo $! > %s; wait" % pidfile)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=15) == 143
    assert wait_gone(int(pidfile.read_text()), 2)


@pytest.mark.parametrize("argv", [[], ["0", "s", "timeouts.default", "--", "true"], ["x", "s", "t", "--", "true"],
                                  ["5", "s", "timeouts.default", "true"]])
def test_bad_usage(argv, capsys):
    assert supervise.main(argv) == 2


def test_duration():
    assert [supervise.duration(s) for s in (15, 300, 1800, 7200, 90)] == ["15s", "5m", "30m", "2h", "90s"]


def test_the_lock_wait_setting_reaches_the_step_within_its_limit():
    def waits(limit, lock_wait):
        argv = [sys.executable, "-I", "-B", AGENT, "supervise", str(limit), "activate", "timeouts.default", "--lock-wait", str(lock_wait), "--",
                "bash", "-c", 'echo "$FDEPLOY_LOCK_WAIT $FDEPLOY_STEP_LIMIT"']
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout
    assert waits(300, 120) == "120 300\n"
    assert waits(15, 120) == "5 15\n", "a step never waits for a lock past its own time limit"
