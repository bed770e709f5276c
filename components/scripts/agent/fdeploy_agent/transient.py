"""Commands in transient units (systemd-run --wait --pipe --collect), as lib.sh run_unit: bounded by
the step's time limit (FDEPLOY_STEP_LIMIT, set by the supervisor; 30 min without it). A unit
outlives a killed systemd-run: when the step is stopped (the supervisor's SIGTERM: time limit, SSH
session gone; SIGINT, SIGHUP) the unit is stopped first (its processes get SIGTERM, SIGKILL after
5 s), so nothing the step started keeps running; then the step exits 143."""
import os
import signal
import subprocess
from typing import List, Optional, Sequence

from .host import Host

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(Exception):
    pass


def step_limit() -> int:
    v = os.environ.get("FDEPLOY_STEP_LIMIT", "")
    return int(v) if v.isdigit() and int(v) > 0 else 1800


def unit_argv(name: str, props: Sequence[str], command: Sequence[str], literal: Sequence[str] = ()) -> List[str]:
    argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--unit=" + name, *literal,
            "-p", "RuntimeMaxSec=%d" % step_limit(), "-p", "TimeoutStopSec=5"]
    for p in props:
        argv += ["-p", p]
    return argv + ["--", *command]


def literal(host: Host, command: Sequence[str]) -> "tuple[List[str], List[str]]":
    """systemd-run's options and COMMAND such that systemd passes every word on as it is: systemd
    expands $NAME, ${NAME} and $$ in a command line itself (a release command's `$$` or '$HOME'
    would reach /bin/sh already changed); told not to (>= 254), or each $ written as $$."""
    if "--expand-environment" in (host.run(["systemd-run", "--help"]).stdout or ""):
        return ["--expand-environment=no"], list(command)
    return [], [w.replace("$", "$$") for w in command]


def run_unit(host: Host, name: str, props: Sequence[str], command: Sequence[str],
             input: Optional[str] = None, options: Sequence[str] = ()) -> "subprocess.CompletedProcess[str]":
    """COMMAND in unit NAME with PROPS (unit settings, `Key=value`) and systemd-run OPTIONS; its
    output merged, INPUT on its stdin."""
    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    old = {s: signal.signal(s, stop) for s in SIGNALS}
    try:
        return host.run(unit_argv(name, props, command, options), merge_output=True, input=input)
    except Stopped:
        host.run(["systemctl", "stop", name])
        raise SystemExit(143)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
