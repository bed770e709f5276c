"""One SSH connection per host for a whole fleet rollout (fleet.py): each call to a host runs over the master
connection (OpenSSH ControlMaster) its first call opened, so a step pays no connection setup (TCP, key exchange,
authentication and the login session: 0.3-1 s a call on a loaded host). The control sockets are in the rollout's
private temporary folder (0700); the masters end with the rollout (close), or PERSIST seconds after their last
call should the rollout be killed. A call in progress when its host died ends without a word (exit 255: the
master that saw its keepalives unanswered has no terminal to say so); ended() tells that from a step's failure."""
import hashlib
import os
from typing import Any, Dict, List

from .host import Host

PERSIST = 30   # s: longer than a lease renewal's interval (fleet_lease.py), so a rollout keeps its masters


def control_path(folder: str, target: Dict[str, Any]) -> str:
    """TARGET's control socket in FOLDER: a short hashed name (a socket path has at most 108 bytes)."""
    key = "%s@%s:%s" % (target.get("user", ""), target.get("host", ""), target.get("port", 22))
    return os.path.join(folder, "cm-" + hashlib.sha256(key.encode()).hexdigest()[:16])


def options(path: str) -> List[str]:
    return ["-o", "ControlMaster=auto", "-o", "ControlPath=" + path, "-o", "ControlPersist=%d" % PERSIST]


def control(argv: List[str], op: str) -> List[str]:
    """A call's ssh ARGV (..., destination, command) turned into `ssh ... -O OP destination`."""
    return argv[:-2] + ["-O", op, argv[-2]]


def ended(host: Host, argv: List[str], returncode: int, said: str) -> bool:
    """The call ARGV failed because its connection ended: exit 255 without a word and its master gone."""
    return returncode == 255 and not said.strip() and host.run(control(argv, "check")).returncode != 0


def close(host: Host, calls: List[List[str]]) -> None:
    """Each master of CALLS (one ssh argv per target) told to exit; one already gone is no error."""
    for argv in calls:
        host.run(control(argv, "exit"))
