"""Strategy canary's decisions (canary_flow.py): whether this deploy can be a canary
or goes live blue-green (and why), its parameters checked, and each step's gate on the app's nginx
upstream log (canary-gate).

Upstream log lines (log_format fdeploy_<app>_upstream, components/nginx-site.ts), tab-separated:
    $msec  $status  $upstream_addr  $upstream_status  $upstream_response_time  $request_time
Only bytes from the step's offset on count. A request is the new release's when the slot that
answered it (the last address nginx tried) is the new slot's socket, the old one's when it is the
old slot's or the live link (requests that began before the split). Requests nginx answered itself
(no upstream: maintenance, static files) are not counted."""
import math
import os
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from . import app as apps
from . import history, slotcheck, slotuser
from .app import App
from .errors import AgentError
from .fsutil import read_regular
from .host import Host

SAFE = re.compile(r"^[^\S\n]*--[^\S\n]*fdeploy:[^\S\n]*canary-safe(\s|$)", re.I | re.M)
PARAMS = {   # parameter: (form, the setting it comes from)
    "CANARY_STEPS": (r"[0-9]{1,3}(,[0-9]{1,3})*", "canary.steps"),
    "CANARY_STEP_SECONDS": (r"[0-9]{1,4}", "canary.stepSeconds"),
    "CANARY_MIN_REQUESTS": (r"[0-9]{1,7}", "canary.minRequests"),
    "CANARY_MAX_WAIT_SECONDS": (r"[0-9]{1,4}", "canary.maxWaitSeconds"),
    "CANARY_MAX_P95_MS": (r"[0-9]{1,6}", "canary.maxP95Ms"),
    "CANARY_MAX_ERROR_RATE": (r"(0|1)?(\.[0-9]+)?", "canary.maxErrorRate"),
    "CANARY_LOW_TRAFFIC": (r"wait|fail|pass", "canary.lowTraffic"),
}


def unsafe_migrations(host: Host, app: App) -> List[str]:
    """The migrations of the set in force newer than the live release's schema without the marker."""
    live = history.live_schema(history.entries(host, app))
    if live is None:
        return []
    folder = host.path(app.root + "/migrations/current")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in names:
        if re.fullmatch(r"[0-9]{4}_.*\.up\.sql", name) and int(name[:4]) > live:
            text = read_regular(os.path.join(folder, name))
            if text is not None and not SAFE.search(text.decode(errors="replace")):
                out.append(name)
    return out


def canary_migrations(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`canary-migrations`, params APP: unsafe_migrations() (a fleet's canary asks its first host, fleet_canary.py)."""
    return {"unsafe": unsafe_migrations(host, apps.load(host, apps.check_name(params.get("APP"))))}


def fallback(host: Host, app: App, params: Dict[str, Any]) -> str:
    """Why this deploy cannot be a canary ("" when it can)."""
    live = slotuser.live_slot(host, app)
    if not live:
        return "no release is live yet"
    if host.run(["systemctl", "is-active", "--quiet", "fdeploy-%s@%s.service" % (app.name, live)]).returncode != 0:
        return "the live slot %s does not run" % live
    if params.get("ROLLBACK"):
        return "a rollback returns to a release that already ran here"
    site = read_regular(host.path("/etc/nginx/sites-available/fdeploy-%s.conf" % app.name)) or b""
    include = ("include %s/upstream.conf;" % app.config_dir).encode()
    if include not in site or not os.path.islink(host.path("/etc/nginx/sites-enabled/fdeploy-%s.conf" % app.name)):
        return "the nginx site in force does not split traffic yet (this deploy installs it after the switch; the next one is a canary)"
    unsafe = unsafe_migrations(host, app)
    if unsafe:
        return "migrations applied for this release are not marked '-- fdeploy: canary-safe': %s" % " ".join(unsafe)
    return ""


def canary_plan(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`canary-plan`, params: the activation's (APP, ROLLBACK, CANARY_*). fallback: why the deploy goes
    live blue-green instead ("" for a canary, whose parameters are then checked)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    why = fallback(host, app, params)
    if not why:
        checked(params, PARAMS)
    return {"fallback": why}


def _last(field: str) -> str:
    # "a, b" (nginx tried the next server) or "a : b" (an internal redirect): the last one answered
    return field.replace(" : ", ", ").split(", ")[-1].strip()


def _ms(seconds: str) -> Optional[float]:
    try:
        return float(seconds) * 1000.0
    except ValueError:
        return None


def p95(values: List[float]) -> Optional[float]:
    if not values:
        return None
    values = sorted(values)
    return values[max(0, math.ceil(0.95 * len(values)) - 1)]


Side = Tuple[int, int, List[float]]   # requests, 5xx, response times (ms)


def tally(samples: Iterable[Tuple[str, bool, Optional[float]]]) -> Dict[str, Side]:
    """Each side's (new, old) numbers from SAMPLES (side, 5xx, ms or None); other sides are not counted."""
    stats: Dict[str, Side] = {"new": (0, 0, []), "old": (0, 0, [])}
    for who, error, t in samples:
        if who in stats:
            n, e, times = stats[who]
            stats[who] = (n + 1, e + error, times + [t] if t is not None else times)
    return stats


def verdict(stats: Dict[str, Side], max_err: float, max_p95: float, min_req: int, mode: str) -> Tuple[int, str]:
    """The step's verdict on each side's numbers, and the numbers (one line). 0: the gates pass (early:
    nothing tripped yet); 2: fewer than MIN_REQ requests on the new release (final only); 3: its 5xx
    share is over MAX_ERR; 4: its p95 is over MAX_P95 ms. MODE final is the step's verdict; early only
    trips on a clear error share. The single server's gate (nginx's log) and the fleet's (HAProxy's) share it."""
    def text(who: str) -> str:
        n, e, times = stats[who]
        rate = "%.1f %%" % (100.0 * e / n) if n else "-"
        q = p95(times)
        return "%s %d requests, %d 5xx (%s), p95 %s" % (who, n, e, rate, "-" if q is None else "%.0f ms" % q)

    n, e, times = stats["new"]
    rate, q = (e / n if n else 0.0), p95(times)
    line = "%s | %s" % (text("new"), text("old"))
    if mode == "early":
        return (3 if n >= min_req and rate > max_err else 0), line
    if n < min_req:
        return 2, line
    if rate > max_err:
        return 3, line
    if q is not None and q > max_p95:
        return 4, line
    return 0, line


def gate(data: bytes, old: str, new: str, max_err: float, max_p95: float, min_req: int, mode: str) -> Tuple[int, str]:
    """verdict() on the nginx upstream log bytes DATA since the step's start (OLD, NEW: the slots' sockets)."""
    live = os.path.join(os.path.dirname(old), "live.sock")

    def samples() -> Iterator[Tuple[str, bool, Optional[float]]]:
        # a line still being written has no newline yet: the next read sees it
        for raw in data.split(b"\n")[:-1]:
            fields = raw.decode("utf-8", "replace").split("\t")
            if len(fields) < 6:
                continue
            addr = _last(fields[2])
            addr = addr[len("unix:"):] if addr.startswith("unix:") else addr
            t = _ms(_last(fields[4]))
            # 5xx: what the user got
            yield ("new" if addr == new else "old" if addr in (old, live) else ""), fields[1].startswith("5"), t if t is not None else _ms(fields[5])
    return verdict(tally(samples()), max_err, max_p95, min_req, mode)


def checked(params: Dict[str, Any], keys: Iterable[str]) -> None:
    """The canary settings KEYS of PARAMS in their forms (PARAMS), else an error naming the setting."""
    for key in keys:
        form, setting = PARAMS[key]
        if not re.fullmatch(form, str(params.get(key, ""))):
            raise AgentError("the canary setting flask-deploy:%s is %r; expected the form %s (see the README's canary settings)"
                             % (setting, params.get(key), form))


GATES = ("CANARY_MAX_ERROR_RATE", "CANARY_MAX_P95_MS", "CANARY_MIN_REQUESTS")


def limits(params: Dict[str, Any]) -> Tuple[float, float, int]:
    """The gates' limits of PARAMS (checked first)."""
    checked(params, GATES)
    return float(params["CANARY_MAX_ERROR_RATE"] or 0), float(params["CANARY_MAX_P95_MS"]), int(params["CANARY_MIN_REQUESTS"])


def socket_path(app: App, slot: str) -> str:
    return "/run/fdeploy-%s/%s.sock" % (app.name, slot)


def upstream_log(app: App) -> str:
    return "/var/log/nginx/fdeploy-%s.upstream.log" % app.name


def canary_gate(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """`canary-gate`, params APP, SLOT (the new slot), OFFSET (the upstream log's size when the step
    began), MODE (early | final) and the activation's CANARY_MAX_ERROR_RATE, CANARY_MAX_P95_MS,
    CANARY_MIN_REQUESTS (checked by canary-plan). line: "VERDICT NUMBERS" (gate()'s), or in MODE early
    "5 WHY" when the new slot's process died (the step's abort)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    slot, offset, mode = str(params.get("SLOT", "")), str(params.get("OFFSET", "")), params.get("MODE")
    if slot not in ("blue", "green") or not offset.isdigit() or mode not in ("early", "final"):
        raise AgentError("bad canary-gate parameters (SLOT %r, OFFSET %r, MODE %r)" % (slot, offset, mode))
    max_err, max_p95, min_req = limits(params)
    if mode == "early":
        props = slotcheck.unit_props(host, "fdeploy-%s@%s.service" % (app.name, slot))
        why = slotcheck.died(props, props["MainPID"])
        if why:
            return {"verdict": 5, "summary": why, "line": "5 " + why}
    try:
        with open(host.path(upstream_log(app)), "rb") as f:
            f.seek(int(offset))
            data = f.read()
    except FileNotFoundError:
        data = b""
    live = slotuser.live_slot(host, app)
    rc, line = gate(data, socket_path(app, live), socket_path(app, slot), max_err, max_p95, min_req, mode)
    return {"verdict": rc, "summary": line, "line": "%d %s" % (rc, line)}
