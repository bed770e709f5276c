"""The balancer's verbs (components/load-balancer.ts, fleet.py): HAProxy from Debian, configured from
data (haproxy_config.py), validated with `haproxy -c` before a graceful reload, and each app host
drained and put back through the runtime API socket.
  lb-configure  APP, SERVER_NAME, HEALTH_PATH, HOSTS, DRAIN_SECONDS: this app's fragment, then haproxy.cfg for all
                apps; a host that leaves HOSTS is drained (up to DRAIN_SECONDS for its in-flight requests) first;
                HTTPS: lb_tls.py (your certificate), lb_acme.py (ACME)
  lb-drain      APP, HOST (an address of HOSTS), WAIT: no new requests to HOST; waits for in-flight ones
  lb-ready      APP, HOST, WAIT_UP (seconds, 0: none): HOST takes requests again; waits until its check passes
  lb-status     APP: each host's state as HAProxy sees it
  lb-delete     APP (the step's delete): this app's part goes; the others' stay, or haproxy stops with none left
(lb-maintenance: lb_maintenance.py)"""
import json
import os
import secrets
import socket
from typing import Any, Callable, Dict, List, Optional

from . import apt, haproxy_reload, lb_acme, lb_tls
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .haproxy_config import NAME, SERVER_STATE, SOCKET, backend, check_fragment, maintenance_page, render, server_name
from .haproxy_reload import FRAGMENTS, Unreachable, config_lock
from .host import Host

Log = Callable[[str], None]
Api = Callable[[str], str]
CONFIG = "/etc/haproxy/haproxy.cfg"


def runtime_api(command: str, path: str = SOCKET) -> str:
    """One command on HAProxy's runtime API socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        try:
            s.connect(path)
        except OSError as e:
            raise Unreachable("cannot reach HAProxy's runtime API at %s (%s): is haproxy running? (systemctl status haproxy)" % (path, e))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(b)


def fragments(host: Host) -> List[Dict[str, Any]]:
    folder = host.path(FRAGMENTS)
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        data = read_regular(os.path.join(folder, name)) if name.endswith(".json") else None
        if data is not None:
            out.append(json.loads(data))
    return out


def in_maintenance(host: Host) -> List[str]:
    """The apps whose maintenance page is in place (lb_maintenance.py): every deploy's config keeps it."""
    return [f["APP"] for f in fragments(host) if os.path.isfile(host.path(maintenance_page(f["APP"])))]


def lb_configure(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[Api] = None) -> Dict[str, Any]:
    frag = check_fragment(dict(params, **lb_tls.part(params)))   # bad input: refused before anything changes
    acme = lb_acme.request(params)
    drain = _seconds(params, "DRAIN_SECONDS")
    pem = lb_tls.checked_pem(host, params)
    apt.install_missing(host, "haproxy", ["haproxy"], log)
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path(FRAGMENTS), 0o700)
    if acme:
        lb_acme.prepare(host, params, log)
    run = api or runtime_api
    with config_lock(host, lock_wait, log):
        if acme:   # certbot runs under the lock too: one issuance on this balancer at a time (one challenge port)
            app, before = frag["APP"], read_regular(host.path("%s/%s.json" % (FRAGMENTS, frag["APP"])))
            was = read_regular(host.path(lb_tls.pem_path(app)))
            changed = lb_acme.certify(host, acme, frag, log, lambda f, p: _configure(host, f, p, log, run, drain),
                                      lambda: _put_back(host, app, before, was, log, run))
        else:
            changed = _configure(host, frag, pem, log, run, drain)
            lb_acme.forget(host, frag["APP"], log)
    if changed:
        log("haproxy: %s serves %s" % (backend(frag["APP"]), ", ".join(frag["HOSTS"])))
    return {"changed": changed}


def _configure(host: Host, frag: Dict[str, Any], pem: Any, log: Log, api: Api, drain: int) -> bool:
    path = host.path("%s/%s.json" % (FRAGMENTS, frag["APP"]))
    old = read_regular(path)
    if old is not None:   # a killed canary's weights (on the servers the running config has)
        from .haproxy_canary import restore   # (it builds on this module)
        restore(host, api, frag["APP"], log)
    drained = _drain_leaving(host, json.loads(old)["HOSTS"] if old else [], frag, log, api, drain)
    write_atomic(path, json.dumps(frag, sort_keys=True).encode(), 0o600)
    new_cert, restore_cert = lb_tls.put(host, frag["APP"], pem)

    def restore() -> None:
        restore_cert()
        write_atomic(path, old, 0o600) if old is not None else os.unlink(path)
        for target in drained:   # the running balancer as it was: the leaving hosts serve again
            try:
                _state_now(host, api, target, "ready")
            except AgentError as e:
                log("haproxy: %s stays drained: %s" % (target, e))
    return apply(host, log, restore=restore, reload=new_cert, api=api)


def _put_back(host: Host, app: str, frag: Optional[bytes], pem: Optional[bytes], log: Log, api: Api) -> None:
    """The app's part and certificate as before this run (FRAG None: none), loaded; no part left: HAProxy stopped."""
    path = host.path("%s/%s.json" % (FRAGMENTS, app))
    if frag is not None:
        write_atomic(path, frag, 0o600)
    elif os.path.lexists(path):
        os.unlink(path)
    lb_tls.put(host, app, pem)
    if fragments(host):
        apply(host, log, restore=lambda: None, reload=True, api=api)
    else:
        host.systemctl("disable", "--now", "haproxy")


def _drain_leaving(host: Host, was: List[str], frag: Dict[str, Any], log: Log, api: Api, wait: int) -> List[str]:
    """Each host of WAS that leaves the app's backend (removed from `servers`, or another address at its
    place) drained first, up to WAIT s for its in-flight requests: the reload that takes it out (and the
    later delete that stops its app) then cuts no request. HAProxy not running: nothing to drain. The
    servers drained (backend/server)."""
    drained: List[str] = []
    for i, address in enumerate(was):
        if i < len(frag["HOSTS"]) and frag["HOSTS"][i] == address:
            continue
        target = "%s/%s" % (backend(frag["APP"]), server_name(i))
        try:
            _state_now(host, api, target, "drain")
        except Unreachable:
            return drained
        except AgentError as e:   # not in the running config (a change that failed before): nothing to drain
            log("haproxy: %s (%s) not drained: %s" % (target, address, e))
            continue
        drained.append(target)
        left = _wait_idle(host, api, target, wait)
        log("haproxy: %s (%s) drained before it leaves (%d in flight left)" % (target, address, left))
    return drained


def apply(host: Host, log: Log, restore: Callable[[], object], reload: bool = False, api: Api = runtime_api) -> bool:
    """haproxy.cfg for every app's part, checked with `haproxy -c` first (refused: RESTORE puts the part
    back, the running balancer is unchanged), then a graceful reload that keeps the servers' states
    (haproxy_reload.py); False when it was in force already (RELOAD: a file it loads changed, a
    certificate). The caller holds config_lock from its change of the parts on."""
    text = render(fragments(host), in_maintenance(host)).encode()
    old = read_regular(host.path(CONFIG))
    if old == text and not reload:
        host.systemctl("enable", "--now", "haproxy")
        return False
    candidate = host.path("%s.fdeploy-new-%s" % (CONFIG, secrets.token_hex(6)))
    write_atomic(candidate, text, 0o644)
    try:
        r = host.run(["haproxy", "-c", "-q", "-f", candidate], merge_output=True)
        if r.returncode != 0:
            restore()
            raise AgentError("the rendered haproxy.cfg fails `haproxy -c` (the running balancer is unchanged): %s" % (r.stdout or "").strip()[-600:])
        haproxy_reload.save_state(host, api, (old or b"").decode(errors="replace"), text.decode())
        pid = haproxy_reload.worker_pid(api)
        os.rename(candidate, host.path(CONFIG))
    finally:
        if os.path.lexists(candidate):
            os.unlink(candidate)
    host.systemctl("enable", "haproxy")
    # reload: the master starts new workers with the new config; the old ones finish their connections
    host.systemctl("reload-or-restart", "haproxy")
    haproxy_reload.wait_new_worker(host, api, pid)
    return True


def lb_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[Api] = None) -> Dict[str, Any]:
    app = _target(params)
    if not os.path.isdir(host.path(FRAGMENTS)):
        return {"changed": False}
    with config_lock(host, lock_wait, log):
        return _delete(host, app, log, api or runtime_api)


def _delete(host: Host, app: str, log: Log, api: Api) -> Dict[str, Any]:
    path = host.path("%s/%s.json" % (FRAGMENTS, app))
    old = read_regular(path)
    if old is None:
        return {"changed": False}
    os.unlink(path)
    for leftover in (maintenance_page(app), maintenance_page(app) + ".state", lb_tls.pem_path(app), "%s/%s.canary-weights" % (FRAGMENTS, app)) + (() if fragments(host) else (SERVER_STATE,)):
        if os.path.isfile(host.path(leftover)):
            os.unlink(host.path(leftover))
    lb_acme.forget(host, app, log)
    if not fragments(host):
        log("haproxy: no app left on this balancer: stopped")
        host.systemctl("disable", "--now", "haproxy")
        return {"changed": True}
    apply(host, log, restore=lambda: write_atomic(path, old, 0o600), api=api)
    log("haproxy: %s removed" % backend(app))
    return {"changed": True}


def _target(params: Dict[str, Any]) -> str:
    """backend/server of params APP and HOST (HOSTS' order, from the app's fragment)."""
    app = str(params.get("APP", ""))
    if not NAME.fullmatch(app):
        raise AgentError("bad app name %r" % app)
    return app


def server_of(host: Host, app: str, address: str) -> str:
    for f in fragments(host):
        if f.get("APP") == app and address in f.get("HOSTS", []):
            return "%s/%s" % (backend(app), server_name(f["HOSTS"].index(address)))
    raise AgentError("flask-deploy:servers: the balancer has no host %s for %s (the deploy's lb-configure step adds it)" % (address, app))


def stats(api: Api, app: str) -> Dict[str, Dict[str, str]]:
    """server name -> its `show stat` fields, for APP's backend."""
    return _rows(api, backend(app))


def _rows(api: Api, be: str) -> Dict[str, Dict[str, str]]:
    lines = api("show stat").splitlines()
    if not lines or not lines[0].startswith("# "):
        raise AgentError("unexpected answer from HAProxy's runtime API at /run/haproxy/admin.sock: %r" % lines[:1])
    head = lines[0][2:].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == be and row.get("svname") not in ("BACKEND", "FRONTEND"):
            out[row["svname"]] = row
    return out


def _set_state(host: Host, api: Api, target: str, state: str, log: Log, lock_wait: int) -> None:
    """TARGET's state, saved for the next reload; never between a reload's save and its new worker."""
    with config_lock(host, lock_wait, log):
        _state_now(host, api, target, state)


def _state_now(host: Host, api: Api, target: str, state: str) -> None:
    """_set_state with config_lock held by the caller."""
    answer = api("set server %s state %s" % (target, state)).strip()
    if answer:
        raise AgentError("haproxy's runtime API (/run/haproxy/admin.sock) refused `set server %s state %s`: %s" % (target, state, answer))
    live = haproxy_reload.live_config(host, CONFIG)
    haproxy_reload.save_state(host, api, live, live)


def _wait_idle(host: Host, api: Api, target: str, wait: int) -> int:
    """Until TARGET (backend/server) has no request in flight, at most WAIT s; how many are left."""
    be, srv = target.split("/")
    deadline = host.clock() + wait
    while True:
        cur = int(_rows(api, be).get(srv, {}).get("scur") or 0)
        if cur == 0 or host.clock() >= deadline:
            return cur
        host.sleep(0.2)


def _seconds(params: Dict[str, Any], what: str) -> int:
    v = str(params.get(what, "0"))
    if not v.isdigit() or int(v) > 3600:
        raise AgentError("bad %s %r" % (what, v))
    return int(v)


def lb_drain(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[Api] = None) -> Dict[str, Any]:
    api = api or runtime_api
    app = _target(params)
    target = server_of(host, app, str(params.get("HOST", "")))
    wait = _seconds(params, "WAIT")
    was = stats(api, app).get(target.split("/")[1], {}).get("status", "")
    from .haproxy_canary import restore   # (it builds on this module)
    with config_lock(host, lock_wait, log):   # a rollout's first drain: a killed canary's weights back first
        restore(host, api, app, log)
    _set_state(host, api, target, "drain", log, lock_wait)
    cur = _wait_idle(host, api, target, wait)
    log("haproxy: %s drained (%s in flight left; it was %s)" % (target, cur, was or "unknown"))
    return {"was": was, "inFlight": cur}


def probe(host: Host, frag: Dict[str, Any], address: str) -> "tuple[str, str]":
    """GET the app's health path on ADDRESS through its nginx, as the balancer's check does: (HTTP code, body)."""
    header = frag["SERVER_NAME"].split()[0]
    header = "localhost" if header == "_" else header.replace("*.", "www.", 1)
    r = host.run(["curl", "-sS", "-w", "\n%{http_code}", "--max-time", "5", "-H", "Host: " + header,
                  "http://%s%s" % (address, frag["HEALTH_PATH"])], merge_output=True)
    body, _, code = (r.stdout or "").rstrip("\n").rpartition("\n")
    return code.strip(), body[-300:]


def lb_ready(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[Api] = None) -> Dict[str, Any]:
    """WAIT_UP > 0: HOST's health path must answer 2xx through its nginx (from here) within WAIT_UP s first;
    else the host stays drained and the step fails naming it."""
    api = api or runtime_api
    app = _target(params)
    address = str(params.get("HOST", ""))
    target = server_of(host, app, address)
    wait = _seconds(params, "WAIT_UP")
    if wait:
        frag = next(f for f in fragments(host) if f.get("APP") == app)
        deadline = host.clock() + wait
        code, body = probe(host, frag, address)
        while not code.startswith("2"):
            if host.clock() >= deadline:
                raise AgentError("host %s failed its health check through its nginx (flask-deploy:healthPath) within %ss: %s\n%s" % (
                    address, wait, "HTTP " + code if code and code != "000" else "no answer", body.strip()))
            host.sleep(0.5)
            code, body = probe(host, frag, address)
    _set_state(host, api, target, "ready", log, lock_wait)
    status = stats(api, app).get(target.split("/")[1], {}).get("status", "")
    log("haproxy: %s ready (%s)" % (target, status))
    return {"status": status}


def lb_status(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, api: Optional[Api] = None) -> Dict[str, Any]:
    app = _target(params)
    rows = stats(api or runtime_api, app)
    from .lb_maintenance import state   # (it builds on this module)
    return {"servers": {k: {"status": v.get("status", ""), "scur": v.get("scur", "")} for k, v in sorted(rows.items())},
            "maintenance": state(host, app)}
