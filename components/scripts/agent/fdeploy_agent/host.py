"""The seam between the agent and the machine: the filesystem root, the commands it runs, the
users it looks up and the mounts it makes. On a server: "/", subprocess, pwd, mount(2). In tests:
a temporary folder and fakes."""
import ctypes
import errno
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from .errors import AgentError

MS_BIND, MNT_DETACH, UMOUNT_NOFOLLOW = 4096, 2, 8


def _libc() -> "ctypes.CDLL":
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _bind_mount(source: str, target: str) -> None:
    if _libc().mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "bind mount %s: %s" % (target, os.strerror(e)))


def _unmount(target: str) -> bool:
    if _libc().umount2(target.encode(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0:
        return True
    e = ctypes.get_errno()
    if e == errno.EINVAL:   # not a mount point
        return False
    raise OSError(e, "unmount %s: %s" % (target, os.strerror(e)))


class Spawned:
    """A command running in the background (Host.spawn): its output goes to an anonymous memory
    file (no path anyone could plant), so a chatty command never blocks on a full pipe."""

    def __init__(self, argv: Sequence[str]) -> None:
        self._out = os.fdopen(os.memfd_create("fdeploy-spawned", os.MFD_CLOEXEC), "w+b")
        self._proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)   # its own process group: stop() ends its children too

    def poll(self) -> Optional[int]:
        return self._proc.poll()

    def stop(self) -> None:
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait()
        self._out.close()

    def output(self) -> bytes:
        self._proc.wait()
        self._out.seek(0)
        data = self._out.read()
        self._out.close()
        return data


Runner = Callable[..., "subprocess.CompletedProcess[str]"]   # (argv, merge_output=False[, input=TEXT])


def _run(argv: Sequence[str], merge_output: bool = False, input: Optional[str] = None, umask: int = -1) -> "subprocess.CompletedProcess[str]":
    # close_fds (the default) keeps root's descriptors, the deploy lock among them, from any child
    return subprocess.run(list(argv), stdin=None if input is not None else subprocess.DEVNULL, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merge_output else subprocess.PIPE, text=True, errors="replace", check=False,
                          umask=umask)


def _kill_user(uid: int, gid: int) -> None:
    # kill(-1) as the user itself: every process it may signal, in one pass of the kernel's that no
    # fork slips through (a process forking in a loop cannot outrun it); not the caller (root)
    if uid == 0:
        raise ValueError("refusing to kill every process of root")
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _exec(argv: Sequence[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], list(argv))   # this process's stdin, stdout, stderr (a terminal, or the rest of stdin)


def _lines(argv: Sequence[str]) -> Iterator[str]:
    with subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, errors="replace") as p:
        assert p.stdout is not None
        yield from p.stdout


def _passwd(name: str) -> Optional[Tuple[int, str, str]]:
    try:
        p = pwd.getpwnam(name)
    except KeyError:
        return None
    return p.pw_uid, p.pw_gecos, p.pw_dir


class Host:
    def __init__(self, root: str = "/", run: Optional[Runner] = None,
                 user_ids: Optional[Callable[[str], Tuple[int, int]]] = None,
                 which: Optional[Callable[[str], Optional[str]]] = None,
                 bind_mount: Optional[Callable[[str, str], None]] = None,
                 unmount: Optional[Callable[[str], bool]] = None,
                 kill_user: Optional[Callable[[int, int], None]] = None,
                passwd: Optional[Callable[[str], Optional[Tuple[int, str, str]]]] = None,
                 spawn: Optional[Callable[[Sequence[str]], Spawned]] = None,
                 exec_: Optional[Callable[[Sequence[str]], None]] = None,
                 lines: Optional[Callable[[Sequence[str]], Iterator[str]]] = None,
                 clock: Optional[Callable[[], float]] = None, sleep: Optional[Callable[[float], None]] = None) -> None:
        self.root = root
        self._run = run or _run
        self._user_ids = user_ids or (lambda name: (pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid))
        self._which = which or shutil.which
        self._bind_mount = bind_mount or _bind_mount
        self._unmount = unmount or _unmount
        self._kill_user = kill_user or _kill_user
        self._passwd = passwd or _passwd
        self._spawn = spawn or Spawned
        self._exec = exec_ or _exec
        self._lines = lines or _lines
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self.commands: List[List[str]] = []   # what ran, in order (tests read it)

    def path(self, p: str) -> str:
        """An absolute server path, under this host's root."""
        return os.path.join(self.root, p.lstrip("/"))

    def run(self, argv: Sequence[str], merge_output: bool = False, input: Optional[str] = None,
            umask: Optional[int] = None) -> "subprocess.CompletedProcess[str]":
        """ARGV's exit status and output (stderr after stdout, or merged into it in order); INPUT
        (e.g. a secret, never on a command line) on its stdin, else /dev/null; UMASK its umask."""
        self.commands.append(list(argv))
        if umask is not None:
            return self._run(argv, merge_output=merge_output, input=input, umask=umask)
        if input is None:
            return self._run(argv, merge_output=merge_output)
        return self._run(argv, merge_output=merge_output, input=input)

    def spawn(self, argv: Sequence[str]) -> Spawned:
        """ARGV started in the background (stdin /dev/null; poll, stop or read its output)."""
        self.commands.append(list(argv))
        return self._spawn(argv)

    def exec(self, argv: Sequence[str]) -> None:
        """Replace this process with ARGV (fdeploy exec, console, logs): it gets our stdin, stdout, stderr."""
        self.commands.append(list(argv))
        self._exec(argv)

    def lines(self, argv: Sequence[str]) -> Iterator[str]:
        """ARGV's stdout, line by line as it comes (stderr: ours), e.g. `tail -F`."""
        self.commands.append(list(argv))
        return self._lines(argv)

    def clock(self) -> float:
        """Seconds on a monotonic clock (tests: a fake one that sleep() advances)."""
        return self._clock()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    def user_ids(self, name: str) -> Tuple[int, int]:
        return self._user_ids(name)

    def kill_user(self, name: str) -> None:
        """SIGKILL to every process of user NAME."""
        self._kill_user(*self.user_ids(name))

    def passwd(self, name: str) -> Optional[Tuple[int, str, str]]:
        """User NAME's (uid, comment, home), None when there is no such user."""
        return self._passwd(name)

    def systemctl(self, *args: str) -> str:
        """`systemctl ARGS…`'s output; a failure raises AgentError naming the command and its last words."""
        r = self.run(["systemctl", *args], merge_output=True)
        if r.returncode != 0:
            raise AgentError("systemctl %s failed: %s" % (" ".join(args), (r.stdout or "").strip()[-400:]))
        return r.stdout or ""

    def which(self, command: str) -> Optional[str]:
        return self._which(command)

    def bind_mount(self, source: str, target: str) -> None:
        """mount --bind SOURCE TARGET (not recursive), without any path canonicalisation: SOURCE may
        be a descriptor's /proc/self/fd/N."""
        self._bind_mount(source, target)

    def unmount(self, target: str) -> bool:
        """Detach what is mounted on TARGET (lazily, never following a link); False when nothing is."""
        return self._unmount(target)
