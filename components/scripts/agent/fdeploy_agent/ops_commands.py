"""The `fdeploy` commands that run something on the server (ops.py decides what): the process that
shows the logs, the command in the live release, the nginx reload that puts maintenance mode in
force. `fdeploy` (cli/lib/stack.ts runOnServer) calls these verbs directly; exit 3: not deployed.
  logs         params as ops-logs: journalctl (or tail -F) in place of this process; nginx's logs
               without FOLLOW: {"lines"} (--field lines prints them); with FOLLOW and GREP, tail -F's
               lines that match, as they come
  exec         CMD in the live release (ops-exec's command line) in place of this process. Params:
               stdin's FIRST line only (cli.py reads no further): the rest of stdin is the command's
  console      --app APP: `flask shell` (or python) the same way; stdin is the terminal, never read
  maintenance  ops-maintenance, then nginx reloaded; returns once the workers of the old
               configuration are gone, so that the mode is in force: {"mode", "changed", "message"}
"""
import os
import re
import time
from typing import Any, Callable, Dict

from . import ops
from .errors import AgentError
from .host import Host

Log = Callable[[str], None]


def logs(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    plan = ops.ops_logs(host, params, log, lock_wait)
    if not plan["argv"]:
        return ops.ops_nginx_lines(host, params, log, lock_wait)
    if not plan["filter"]:
        host.exec(plan["argv"])
        return {"lines": []}   # (only a test's exec returns)
    pattern = _pattern(str(params.get("GREP", "")))
    for line in host.lines(plan["argv"]):
        if pattern.search(line):
            print(line, end="", flush=True)
    return {"lines": []}


def _pattern(text: str) -> "re.Pattern[str]":
    try:
        return re.compile(text)
    except re.error as e:
        raise AgentError("bad --grep pattern %r: %s" % (text, e))


def exec_verb(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    host.exec(ops.ops_exec(host, params, log, lock_wait)["argv"])
    return {}


def console(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    return exec_verb(host, dict(params, CONSOLE=True), log, lock_wait)


def reload_nginx(host: Host, log: Log, sleep: Callable[[float], None] = time.sleep) -> None:
    """Reload, and wait until the workers of the old configuration are gone (idle keep-alive
    connections close at once; a long request gets 10 s)."""
    old = (host.run(["pgrep", "-d", " ", "-f", "^nginx: worker process"]).stdout or "").split()
    host.systemctl("reload", "nginx")
    for _ in range(40):
        if not any(os.path.isdir(host.path("/proc/%s" % p)) for p in old if p.isdigit()):
            return
        sleep(0.25)
    log("note: some nginx workers still finish requests with the previous configuration")


def maintenance(host: Host, params: Dict[str, Any], log: Log, lock_wait: int,
                sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    result = ops.ops_maintenance(host, params, log, lock_wait)
    reload_nginx(host, log, sleep)
    return dict(result, message="maintenance %s" % result["mode"])
