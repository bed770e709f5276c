"""Debian packages through apt-get, serialised like lib.sh's apt_install: one flock on
/var/lib/apt/lists (up to 15 min) around the update and the install, so two apps' steps (or an
unattended upgrade that takes the same lock) never run apt at once."""
from typing import Callable, Sequence

from .errors import AgentError
from .host import Host

SCRIPT = 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null'


def argv(packages: Sequence[str]) -> list:
    return ["flock", "-w", "900", "/var/lib/apt/lists", "sh", "-c", SCRIPT, "apt_install", *packages]


def install_missing(host: Host, command: str, packages: Sequence[str], log: Callable[[str], None]) -> bool:
    """PACKAGES installed unless COMMAND is on the PATH already; True when apt ran."""
    if host.which(command):
        return False
    log("installing %s" % " ".join(packages))
    r = host.run(argv(packages), merge_output=True)
    if r.returncode != 0:
        raise AgentError("apt-get install %s failed (exit %d): %s" % (" ".join(packages), r.returncode, (r.stdout or "").strip()[-400:]))
    return True
