"""supervise: every remote step's command line runs through this (components/remote-script.ts):

    python3 -I -B <bundle>/agent supervise SECONDS STEP SETTING [--lock-wait N] -- PROGRAM ARGS…

It starts PROGRAM in its own session (so its own process group) with stdin, stdout and stderr
passed through untouched (stdin carries the step's JSON parameters; the supervisor never reads it),
and stops the whole group — SIGTERM, GRACE seconds, SIGKILL — when
  - the step runs longer than SECONDS (the time limit, config key SETTING), or
  - the SSH session that ran it ends (Pulumi cancelled or killed, network gone): sshd closes its
    ends of the step's stdout/stderr pipes, which poll() reports as POLLERR/POLLHUP, or
  - the supervisor itself gets SIGTERM, SIGINT or SIGHUP.
The supervisor holds no lock: the step takes the deploy lock itself, so the lock goes with the
step's processes. What a step started outside its group (systemd units, containers) is not touched;
a step that waits on a unit stops it when it gets SIGTERM (lib.sh run_unit).
--lock-wait N (config timeouts.lockWait) reaches the step as FDEPLOY_LOCK_WAIT: how long it waits for
another deploy's lock or lease (lib.sh with_deploy_lock, lock.py). The wait counts within SECONDS, so
it is at most SECONDS - 10: a waiting step fails naming the other deploy, never by its time limit.
Exit status: the step's own; 124 when the limit hit, 129 when the session ended, 143 on a signal."""
import ctypes
import os
import select
import signal
import subprocess
import sys
import syslog
import time
from typing import Callable, List, Optional, Sequence, TextIO, Tuple

GRACE = 10.0
EXIT_LIMIT, EXIT_SESSION, EXIT_SIGNAL = 124, 129, 143
GONE = select.POLLERR | select.POLLHUP


def duration(seconds: int) -> str:
    """1800 -> 30m, 5400 -> 90m, 7200 -> 2h, 15 -> 15s: the form the config takes."""
    for unit, n in (("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return "%d%s" % (seconds // n, unit)
    return "%ds" % seconds


def parse(argv: Sequence[str]) -> Tuple[int, str, str, Optional[int], List[str]]:
    argv = list(argv)
    lock_wait = None
    if len(argv) > 5 and argv[3] == "--lock-wait" and argv[4].isdigit():
        lock_wait = int(argv[4])
        del argv[3:5]
    if len(argv) < 5 or argv[3] != "--" or not argv[0].isdigit() or int(argv[0]) < 1:
        raise ValueError("usage: supervise SECONDS STEP SETTING [--lock-wait N] -- PROGRAM ARGS…")
    return int(argv[0]), argv[1], argv[2], lock_wait, list(argv[4:])


def _parent_death_signal() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (even by SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_group(child: "subprocess.Popen[bytes]", grace: float, clock: Callable[[], float] = time.monotonic) -> None:
    """SIGTERM to the step's process group; SIGKILL to what is left after GRACE seconds."""
    pgid = child.pid   # start_new_session: the group's id is the child's pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        end = clock() + wait
        while clock() < end:
            child.poll()   # reaps the child; other members are reaped by init
            if child.returncode is not None and not _group_alive(pgid):
                return
            time.sleep(0.05)


def run(limit: int, step: str, setting: str, cmd: List[str], grace: float = GRACE, lock_wait: Optional[int] = None,
        session_fds: Sequence[int] = (1, 2), stderr: TextIO = sys.stderr,
        clock: Callable[[], float] = time.monotonic, note: Optional[Callable[[str], None]] = None) -> int:
    stopped: List[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopped.append(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    env = dict(os.environ, FDEPLOY_STEP_LIMIT=str(limit))
    if lock_wait is not None:
        env["FDEPLOY_LOCK_WAIT"] = str(max(0, min(lock_wait, limit - 10)))
    try:
        child = subprocess.Popen(cmd, start_new_session=True, env=env, preexec_fn=_parent_death_signal)
    except OSError as e:
        print("error: step %s: could not start %s: %s" % (step, cmd[0], e), file=stderr, flush=True)
        return 127
    poller = select.poll()
    for fd in session_fds:
        try:
            os.fstat(fd)
            poller.register(fd, 0)   # no events asked: poll reports only POLLERR/POLLHUP (the reader is gone)
        except OSError:
            pass
    pidfd = -1
    try:
        pidfd = os.pidfd_open(child.pid)
        poller.register(pidfd, select.POLLIN)   # readable when the child exits: no polling delay
    except (AttributeError, OSError):
        pass
    deadline = clock() + limit
    reason = ""
    try:
        while child.poll() is None:
            if stopped:
                reason = "it got signal %d" % stopped[0]
                break
            if clock() >= deadline:
                reason = "limit"
                break
            try:
                events = poller.poll(100 if pidfd < 0 else 1000)
            except InterruptedError:
                continue
            if any(fd != pidfd and ev & GONE for fd, ev in events):
                reason = "session"
                break
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    if not reason:
        return child.returncode if child.returncode >= 0 else 128 - child.returncode
    if reason == "limit":
        message = ("step %s did not finish within its time limit of %s (config %s): stopped it and every process it started "
                   "(SIGTERM, then SIGKILL after %gs) and released its deploy lock; a step before the switch changed nothing live. "
                   "If it needs longer, raise the limit: pulumi config set --path %s 1h" % (step, duration(limit), setting, grace, setting))
        code = EXIT_LIMIT
    elif reason == "session":
        message = "step %s: its SSH session ended (the deploy was cancelled or lost its connection): stopping it and every process it started" % step
        code = EXIT_SESSION
    else:
        message = "step %s: the supervisor %s: stopping the step and every process it started" % (step, reason)
        code = EXIT_SIGNAL
    (note or _syslog)(message)
    if code == EXIT_SESSION:   # nobody reads stdout/stderr any more: writes (and Python's flush at exit) would fail
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in session_fds:
            os.dup2(devnull, fd)
        os.close(devnull)
    print("error: %s" % message, file=stderr, flush=True)
    stop_group(child, grace, clock)
    return code


def _syslog(message: str) -> None:
    syslog.openlog("fdeploy-supervise")
    syslog.syslog(syslog.LOG_WARNING, message)


def main(argv: Sequence[str], stderr: TextIO = sys.stderr) -> int:
    try:
        limit, step, setting, lock_wait, cmd = parse(argv)
    except ValueError as e:
        print("error: %s" % e, file=stderr)
        return 2
    grace = os.environ.get("FDEPLOY_SUPERVISE_GRACE", "")   # tests only
    return run(limit, step, setting, cmd, grace=float(grace) if grace.isdigit() else GRACE, lock_wait=lock_wait, stderr=stderr)
