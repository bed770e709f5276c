"""One deploy at a time per app on this server: an flock on /run/fdeploy/<app>.lock, the same
lock the bash steps take (lib.sh with_deploy_lock). /run/fdeploy is root's (0700): no app can
open, hold or pre-create it. The descriptor is close-on-exec: no child (least of all one that
runs as the app user) inherits it. A message about a held lock names the process that really
holds it, read from the kernel's lock table."""
import fcntl
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import AgentError
from .fsutil import own_dir
from .host import Host

LOCK_DIR = "/run/fdeploy"


def holder(path: str, proc: str = "/proc") -> str:
    """Who holds the flock on PATH: 'pid <pid> (<user uid>: <command>)', or 'unknown'."""
    try:
        st = os.stat(path)
        want = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        with open(os.path.join(proc, "locks")) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == want:
                    return describe_pid(parts[4], proc)
    except OSError:
        pass
    return "unknown"


def describe_pid(pid: str, proc: str = "/proc") -> str:
    try:
        with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
        with open(os.path.join(proc, pid, "status")) as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
        return "pid %s (uid %s: %s)" % (pid, uid, cmd or "?")
    except (OSError, StopIteration):
        return "pid %s" % pid


@contextmanager
def deploy_lock(host: Host, app: str, wait_seconds: int, log: Callable[[str], None],
                sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    own_dir(host.path(LOCK_DIR), 0o700)
    path = host.path("%s/%s.lock" % (LOCK_DIR, app))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited >= wait_seconds:
                    raise AgentError("another deploy of '%s' is running on this server (the lock %s is held by %s); waited %ds. "
                                     "Wait for it to end, or raise FDEPLOY_LOCK_WAIT" % (app, LOCK_DIR + "/" + app + ".lock", holder(path), waited))
                if waited == 0:
                    log("waiting for another deploy of '%s' on this server to finish (held by %s)…" % (app, holder(path)))
                sleep(2)
                waited += 2
        yield
    finally:
        os.close(fd)   # releases the flock
