"""What keeps a change of haproxy.cfg from undoing another (haproxy.py, lb_maintenance.py):
- one change at a time: an flock on the root-only folder of the apps' parts (/etc/fdeploy/haproxy),
  held from the parts' write through render, `haproxy -c`, rename and reload until the new worker
  answers, and by lb-drain/lb-ready around their state change;
- the servers' states survive a reload: `show servers state` is saved to the file the rendered config
  names (server-state-file) before each reload and after each drain/ready, so the new worker starts
  with a host that is being switched still drained instead of every host ready.
A saved line keeps its server only while its configured address is unchanged (a host replaced at h2
starts fresh), and its address field is "-": HAProxy would otherwise use the saved address over the
config's ("init-addr last")."""
import os
import re
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Optional, Tuple

from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .haproxy_config import SERVER_STATE
from .host import Host
from .lock import flock_within

Log = Callable[[str], None]
Api = Callable[[str], str]
FRAGMENTS = "/etc/fdeploy/haproxy"
WORKER_WAIT = 30


class Unreachable(AgentError):
    """HAProxy's runtime API socket does not answer (haproxy is not running)."""


@contextmanager
def config_lock(host: Host, wait: float, log: Log) -> Iterator[None]:
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path(FRAGMENTS), 0o700)
    fd = os.open(host.path(FRAGMENTS), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flock_within(fd, max(wait, WORKER_WAIT), host.sleep,
                     lambda: log("waiting for another change of this balancer's haproxy.cfg to finish…"),
                     lambda waited: AgentError("another change of the balancer's haproxy.cfg held %s for %ds; run it again" % (FRAGMENTS, waited)))
        yield
    finally:
        os.close(fd)   # releases the flock


def servers(config: str) -> Dict[Tuple[str, str], str]:
    """(backend, server) -> its configured address, in a config render() wrote."""
    out, current = {}, ""
    for line in config.splitlines():
        m = re.match(r"backend (\S+)$", line)
        current = m.group(1) if m else current
        m = re.match(r"    server (\S+) (\S+)$", line)
        if m and current:
            out[(current, m.group(1))] = m.group(2)
    return out


def kept(dump: str, old_config: str, new_config: str) -> str:
    """The lines of `show servers state` DUMP for the servers whose address is the same in OLD_CONFIG
    and NEW_CONFIG, their address field "-"; "" when DUMP is not such an answer."""
    lines = dump.splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit() or not lines[1].startswith("# "):
        return ""
    names = lines[1][2:].split()
    if not {"be_name", "srv_name", "srv_addr"} <= set(names):
        return ""
    old, new = servers(old_config), servers(new_config)
    out = lines[:2]
    for line in lines[2:]:
        fields = line.split(" ")
        if len(fields) != len(names):
            continue
        row = dict(zip(names, fields))
        key = (row["be_name"], row["srv_name"])
        if key in new and old.get(key) == new[key]:
            fields[names.index("srv_addr")] = "-"
            out.append(" ".join(fields))
    return "\n".join(out) + "\n"


def save_state(host: Host, api: Api, old_config: str, new_config: str) -> bool:
    """The running servers' states to SERVER_STATE for NEW_CONFIG; False when haproxy is not running
    (then no file: a stale one would put back states of long ago)."""
    try:
        dump = api("show servers state")
    except Unreachable:
        if os.path.lexists(host.path(SERVER_STATE)):
            os.unlink(host.path(SERVER_STATE))
        return False
    write_atomic(host.path(SERVER_STATE), kept(dump, old_config, new_config).encode(), 0o600)
    return True


def worker_pid(api: Api) -> Optional[str]:
    """The pid of the worker answering the runtime API, None when none does."""
    try:
        info = api("show info")
    except Unreachable:
        return None
    m = re.search(r"^Pid: (\d+)$", info, re.M)
    return m.group(1) if m else None


def wait_new_worker(host: Host, api: Api, old: Optional[str]) -> None:
    """After a reload: until a worker other than OLD answers (it loaded the saved states): a drain
    before that would reach the old worker only."""
    if old is None:
        return
    deadline = host.clock() + WORKER_WAIT
    while worker_pid(api) in (old, None):
        if host.clock() >= deadline:
            raise AgentError("haproxy reloaded, but no new worker answered within %ds (journalctl -u haproxy)" % WORKER_WAIT)
        host.sleep(0.2)


def live_config(host: Host, path: str) -> str:
    return (read_regular(host.path(path)) or b"").decode(errors="replace")
