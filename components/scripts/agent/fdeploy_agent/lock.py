"""One deploy at a time per app on this server: an flock on /run/fdeploy/<app>.lock, every
step that changes the app takes it. /run/fdeploy is root's (0700): no app can
open, hold or pre-create it.
Whoever took it last is recorded beside it ("PID TIME USER" in <app>.lock.owner while held,
<app>.lock.last after: fdeploy lock status, the status's "last deploy by"); only a record: who
holds the lock is asked of the kernel.
The lock is a FOLDER (flock on its read-only descriptor). Versions up to 1cda714 opened it as a
file for writing: on a server this version has deployed to, a deploy by such a version fails at
its first lock ("Is a directory") before it changes anything, instead of writing the old layout
over the new one. prepare() converts the old lock file once, and a tmpfiles.d entry re-creates the
folder at boot (/run is a tmpfs). The descriptor is close-on-exec: no child (least of all one that
runs as the app user) inherits it. A message about a held lock names the process that really
holds it, asked of the kernel (holder())."""
import fcntl
import os
import pwd
import stat
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List

from .errors import AgentError
from .fsutil import own_dir, write_atomic
from .host import Host

LOCK_DIR = "/run/fdeploy"
TMPFILES = "/etc/tmpfiles.d/fdeploy-lock-%s.conf"


def lock_path(host: Host, app: str) -> str:
    return host.path("%s/%s.lock" % (LOCK_DIR, app))


def prepare(host: Host, app: str, sleep: Callable[[float], None] = time.sleep, wait_seconds: float = 30) -> str:
    """The app's lock folder (root's, 0700), converted from an older version's lock file, and its
    tmpfiles.d entry. An old lock file held by a step is waited for (the conversion holds it while
    it swaps the file for the folder, so no step ever holds the lock on the file it replaced)."""
    own_dir(host.path(LOCK_DIR), 0o700)
    path = lock_path(host, app)
    waited = 0.0
    while True:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            continue
        if stat.S_ISDIR(st.st_mode):
            break
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise AgentError("%s is not the deploy lock this version uses (a folder owned by root); remove it: rm %s" % (path, path))
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.lstat(path)):
                os.unlink(path)
        except BlockingIOError:
            if waited >= wait_seconds:
                raise AgentError("the old deploy lock file %s is held by %s; waited %ds" % (path, holder(path), waited))
            sleep(0.2)
            waited += 0.2
        finally:
            os.close(fd)
    own_dir(path, 0o700)
    os.makedirs(host.path(os.path.dirname(TMPFILES)), 0o755, exist_ok=True)
    write_atomic(host.path(TMPFILES % app), ("d %s 0700 root root -\nd %s/%s.lock 0700 root root -\n" % (LOCK_DIR, LOCK_DIR, app)).encode(), 0o644)
    return path


def open_lock(host: Host, app: str, sleep: Callable[[float], None], wait_seconds: float) -> int:
    """A close-on-exec, read-only descriptor of the app's lock folder (prepare()d), to flock."""
    return os.open(prepare(host, app, sleep, wait_seconds), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def holder(path: str, proc: str = "/proc") -> str:
    """Every process that holds the flock on PATH now: 'pid <pid> (uid <uid>: <command>), …', or
    'no process any more'."""
    if not os.path.exists(path):
        return "no process any more (the lock file is gone)"
    found = [describe_pid(pid, proc) for pid in holder_pids(path, proc)]
    return ", ".join(found[:6]) if found else "no process any more (it was just released)"


def holder_pids(path: str, proc: str = "/proc") -> List[str]:
    """The processes that hold the flock on PATH now, asked of the kernel per descriptor
    (/proc/<pid>/fdinfo names the flock an open file holds), not of the process that took it: a
    descriptor can be inherited or copied by a process that is not the deploy that took the lock
    (and /proc/locks names only that one)."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    found: List[str] = []
    for pid in sorted((p for p in os.listdir(proc) if p.isdigit()), key=int):
        fds = os.path.join(proc, pid, "fd")
        try:
            names = os.listdir(fds)
        except OSError:
            continue
        for fd in names:
            try:
                other = os.stat(os.path.join(fds, fd))
                if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open(os.path.join(proc, pid, "fdinfo", fd)) as f:
                    if not any(line.startswith("lock:") and "FLOCK" in line for line in f):
                        continue
            except OSError:
                continue
            found.append(pid)
            break
    return found


def describe_pid(pid: str, proc: str = "/proc") -> str:
    try:
        with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:150]
        with open(os.path.join(proc, pid, "status")) as f:
            uid = int(next(line.split()[1] for line in f if line.startswith("Uid:")))
    except (OSError, StopIteration, ValueError):
        return "pid %s" % pid
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return "pid %s (user %s: %s)" % (pid, user, cmd or "?")


def flock_within(fd: int, wait_seconds: float, sleep: Callable[[float], None], on_wait: Callable[[], None],
                 refusal: Callable[[float], AgentError]) -> None:
    """An exclusive flock on FD, tried every second: ON_WAIT once when it must wait, REFUSAL(waited) raised
    once WAIT_SECONDS went by (a server-wide step lock: apt's lists folder, the PostgreSQL server's)."""
    waited = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if waited >= wait_seconds:
                raise refusal(waited)
            if waited == 0:
                on_wait()
            sleep(1)
            waited += 1


@contextmanager
def deploy_lock(host: Host, app: str, wait_seconds: int, log: Callable[[str], None],
                sleep: Callable[[float], None] = time.sleep, deploy: str = "") -> Iterator[None]:
    """The flock, and with DEPLOY the deploy's lease too (lease.py): another deploy's lease that
    still holds is waited for like the flock, without holding it."""
    from . import lease   # lease.py uses LOCK_DIR
    path = lock_path(host, app)
    fd = open_lock(host, app, sleep, wait_seconds)
    try:
        waited, logged = 0.0, ""
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                other = lease.take(host, app, deploy) if deploy else None
                if other is None:
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)
                kind, who = "lease", lease.describe(other)
            except BlockingIOError:
                kind, who = "lock", "the lock %s/%s.lock is held by %s%s" % (LOCK_DIR, app, holder(path), lease.step_of(host, app))
            if waited >= wait_seconds:
                raise AgentError("another deploy of '%s' is running on this server: %s; waited %ds. "
                                 "Wait, or wait longer: pulumi config set --path timeouts.lockWait 10m" % (app, who, waited))
            if kind != logged:   # once per kind: a step of the other deploy, then its lease between steps
                log("waiting for another deploy of '%s' on this server to finish (%s)…" % (app, who))
                logged = kind
            sleep(2)
            waited += 2
        owner = "%d %s %s\n" % (os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 os.environ.get("SUDO_USER") or os.environ.get("USER") or "root")
        write_atomic(path + ".owner", owner.encode(), 0o600)
        try:
            yield
        finally:
            if deploy:
                lease.renew(host, app, deploy)
            try:
                os.replace(path + ".owner", path + ".last")
            except OSError:
                pass
    finally:
        os.close(fd)   # releases the flock
