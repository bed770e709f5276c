"""Strategy canary on a fleet, the balancer's side (fleet_canary.py drives it, README "Strategies"): the
canary host's share of the app's requests set with HAProxy's server weights through the runtime API (no
reload), and each step's gate read from HAProxy's request log.
  lb-canary  APP, ACTION:
    weights  HOST, PERCENT: HOST (an address of the app's part) gets PERCENT % of the app's requests, the
             other hosts the rest in equal shares. The weights before are kept first (root-only
             /etc/fdeploy/haproxy/<app>.canary-weights, once per canary).
    mark     MARK: where HAProxy's log is now (a step starts).
    gate     HOST, MARK, MODE (early | final), CANARY_MAX_ERROR_RATE, CANARY_MAX_P95_MS, CANARY_MIN_REQUESTS:
             canary.verdict() on the requests logged since MARK: HOST's ("new") against the others' ("old").
    restore  every host back to the weight it had (nothing to do without a kept file).
lb-configure and lb-drain restore too (under the config lock), so a canary killed mid-step skews the
weights only until the next up, whatever its strategy.

The log: haproxy.cfg logs every request (option httplog) to /dev/log, which is journald's on Debian;
journalctl reads the lines since a cursor, so a step counts exactly the requests that ended in it. A
line's server is the last one HAProxy tried (a retry's), its time Tr (the server's answer, ms; Ta when
there was none), its status what the client got."""
import json
import os
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import canary, haproxy
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .haproxy_config import backend
from .haproxy_reload import Unreachable, config_lock, live_config, save_state
from .host import Host

Log = Callable[[str], None]
MAX_WEIGHT = 256   # HAProxy's
CURSOR = re.compile(r"^[A-Za-z0-9=;_-]{1,300}$")
# … <backend>/<server> TR/Tw/Tc/Tr/Ta STATUS … (HAProxy's httplog format)
LINE = re.compile(r" (\S+)/(\S+) (-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/(\+?-?\d+) (\d{3}) ")


def kept_path(app: str) -> str:
    return "%s/%s.canary-weights" % (haproxy.FRAGMENTS, app)


def weights(n: int, index: int, pct: int) -> List[int]:
    """The weights of N servers that send server INDEX PCT % of the requests and the others equal shares
    of the rest (HAProxy's 1-256: within a percent, but at most 256 / (255 + N), e.g. 96.6 % of 10 hosts;
    0 and 100 % exact)."""
    if n < 2 or pct >= 100:
        return [1 if i == index else (0 if pct >= 100 else 1) for i in range(n)]
    if pct <= 0:
        return [0 if i == index else 1 for i in range(n)]
    mine, other = pct * (n - 1), 100 - pct
    scale = min(1.0, MAX_WEIGHT / max(mine, other))
    mine, other = max(1, round(mine * scale)), max(1, round(other * scale))
    return [mine if i == index else other for i in range(n)]


def _servers(host: Host, app: str) -> List[str]:
    frag = next((f for f in haproxy.fragments(host) if f.get("APP") == app), None)
    if frag is None:
        raise AgentError("app %s has no part on this balancer (/etc/fdeploy/haproxy/%s.json): pulumi up deploys it" % (app, app))
    return ["h%d" % (i + 1) for i in range(len(frag["HOSTS"]))]


def _weight(api: haproxy.Api, target: str) -> int:
    answer = api("get weight %s" % target).strip()   # "1 (initial 1)"
    m = re.match(r"(\d+)", answer)
    if not m:
        raise AgentError("haproxy's runtime API (/run/haproxy/admin.sock) did not tell the weight of %s: %r" % (target, answer[:200]))
    return int(m.group(1))


def _set(host: Host, api: haproxy.Api, app: str, table: Dict[str, int]) -> None:
    """Each server's weight of TABLE, then the servers' states saved for the next reload (config lock held)."""
    for srv, w in sorted(table.items()):
        answer = api("set server %s/%s weight %d" % (backend(app), srv, w)).strip()
        if answer:
            raise AgentError("haproxy's runtime API (/run/haproxy/admin.sock) refused `set server %s/%s weight %d`: %s" % (backend(app), srv, w, answer))
    live = live_config(host, haproxy.CONFIG)
    save_state(host, api, live, live)


def set_share(host: Host, api: haproxy.Api, app: str, address: str, pct: int, log: Log) -> Dict[str, int]:
    """ADDRESS's server gets PCT % (weights()); the weights before kept once (restore() puts them back)."""
    names = _servers(host, app)
    mine = haproxy.server_of(host, app, address).split("/")[1]
    path = host.path(kept_path(app))
    if read_regular(path) is None:
        write_atomic(path, json.dumps({s: _weight(api, "%s/%s" % (backend(app), s)) for s in names}, sort_keys=True).encode(), 0o600)
    table = dict(zip(names, weights(len(names), names.index(mine), pct)))
    _set(host, api, app, table)
    log("haproxy: %s gets %d %% of %s's requests (weights %s)" % (address, pct, app, ", ".join("%s %d" % kv for kv in sorted(table.items()))))
    return table


def restore(host: Host, api: haproxy.Api, app: str, log: Log) -> bool:
    """The weights a canary kept back on every server still in the app's part; False: none were kept."""
    path = host.path(kept_path(app))
    data = read_regular(path)
    if data is None:
        return False
    try:
        kept = {k: int(v) for k, v in json.loads(data).items()}
    except (ValueError, AttributeError, TypeError):
        kept = {}
    try:
        names = _servers(host, app)
    except AgentError:
        names = []
    # a server the kept file does not know (a host joined meanwhile) gets its configured weight
    try:
        _set(host, api, app, {s: kept.get(s, 1) for s in names})
    except Unreachable:   # haproxy stopped: it starts with the config's weights (no saved state is kept)
        save_state(host, api, "", "")
    os.unlink(path)
    log("haproxy: %s's weights back to what they were before the canary" % app)
    return True


def mark(host: Host) -> str:
    """Where HAProxy's log is now: 'c:' and journald's cursor after its last line, or 'start' (none yet:
    every line there will be is after now)."""
    r = host.run(["journalctl", "-q", "-t", "haproxy", "-n", "1", "-o", "cat", "--show-cursor"])
    m = re.search(r"^-- cursor: (\S+)$", r.stdout or "", re.M)
    if r.returncode != 0:
        raise AgentError("journalctl could not read HAProxy's log (the canary's gate): %s" % (r.stderr or r.stdout or "").strip()[-300:])
    return "c:" + m.group(1) if m and CURSOR.fullmatch(m.group(1)) else "start"


def since(host: Host, where: str) -> str:
    """HAProxy's log lines since WHERE (mark())."""
    kind, _, value = where.partition(":")
    if kind == "c" and CURSOR.fullmatch(value):
        after = ["--after-cursor", value]
    elif where == "start":
        after = []
    else:
        raise AgentError("bad canary parameters (MARK %r: from lb-canary mark)" % where)
    r = host.run(["journalctl", "-q", "-t", "haproxy", "-o", "cat", *after])
    if r.returncode != 0:
        raise AgentError("journalctl could not read HAProxy's log (the canary's gate): %s" % (r.stderr or r.stdout or "").strip()[-300:])
    return r.stdout or ""


def samples(text: str, be: str, canary_server: str) -> Iterator[Tuple[str, bool, Optional[float]]]:
    """(side, 5xx, ms) of each request of backend BE in the log TEXT: "new" for CANARY_SERVER's, "old" for the others'."""
    for line in text.splitlines():
        m = LINE.search(line)
        if not m or m.group(1) != be or m.group(2).startswith("<"):   # <NOSRV>: HAProxy answered itself
            continue
        tr, ta = int(m.group(6)), int(m.group(7).lstrip("+"))
        t = tr if tr >= 0 else ta if ta >= 0 else None
        yield ("new" if m.group(2) == canary_server else "old"), m.group(8).startswith("5"), None if t is None else float(t)


def lb_canary(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[haproxy.Api] = None) -> Dict[str, Any]:
    api = api or haproxy.runtime_api
    app = haproxy._target(params)
    action = params.get("ACTION")
    if action not in ("weights", "mark", "gate", "restore"):
        raise AgentError("bad canary parameters (ACTION %r: weights, mark, gate or restore)" % (action,))
    if action == "restore":
        with config_lock(host, lock_wait, log):
            return {"restored": restore(host, api, app, log)}
    if action == "mark":
        return {"mark": mark(host)}
    address = str(params.get("HOST", ""))
    target = haproxy.server_of(host, app, address)
    if action == "weights":
        pct = str(params.get("PERCENT", ""))
        if not pct.isdigit() or int(pct) > 100:
            raise AgentError("bad canary share %r (flask-deploy:canary.steps: percentages from 0 to 100)" % pct)
        with config_lock(host, lock_wait, log):
            table = set_share(host, api, app, address, int(pct), log)
        return {"weights": table}
    mode = params.get("MODE")   # gate
    if mode not in ("early", "final"):
        raise AgentError("bad canary parameters (MODE %r: early or final)" % (mode,))
    max_err, max_p95, min_req = canary.limits(params)
    stats = canary.tally(samples(since(host, str(params.get("MARK", ""))), backend(app), target.split("/")[1]))
    rc, line = canary.verdict(stats, max_err, max_p95, min_req, mode)
    return {"verdict": rc, "summary": line}
