"""The balancer's haproxy.cfg, rendered from data: one JSON fragment per app the balancer serves
(/etc/fdeploy/haproxy/<app>.json, written by `lb-configure`), one frontend on :80 that routes by the
Host header (an app with serverName `_` is the default), one backend per app with an HTTP health check
per host through its nginx. Nothing the stack sets is spliced in unchecked: every value is validated."""
import re
from typing import Any, Collection, Dict, List

from .errors import AgentError

SOCKET = "/run/haproxy/admin.sock"
# the servers' states (drain, maint, weight…) as the agent saved them before a reload (haproxy.py);
# the new worker starts with them instead of every server ready
SERVER_STATE = "/etc/fdeploy/haproxy/server-state"
TLS_CERTS = "/etc/fdeploy/haproxy/certs"   # lb_tls.py
# tls.mode acme at the balancer (lb_acme.py): certbot's standalone HTTP-01 server, on loopback only while it runs
CHALLENGE_PORT = 8402
CHALLENGE_BACKEND = "fdeploy_acme"
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


def backend(app: str) -> str:
    return "app_" + app.replace("-", "_")


def server_name(i: int) -> str:
    """Host i's name in its backend (h1, h2 …: the order of `servers`)."""
    return "h%d" % (i + 1)


def check_fragment(frag: Dict[str, Any]) -> Dict[str, Any]:
    """FRAG as lb-configure takes it: APP, SERVER_NAME (`_` or names), HEALTH_PATH, HOSTS [address…] (or "a,b")."""
    app = str(frag.get("APP", ""))
    if not NAME.fullmatch(app):
        raise AgentError("bad app name %r" % app)
    path = str(frag.get("HEALTH_PATH", ""))
    if not PATH.fullmatch(path):
        raise AgentError("bad health path %r (flask-deploy:healthPath: e.g. /health)" % path)
    names = str(frag.get("SERVER_NAME", "_")).split(" ")
    if names != ["_"] and not all(HOST.fullmatch(n.replace("*.", "", 1)) for n in names):
        raise AgentError("bad server name %r (flask-deploy:serverName)" % frag.get("SERVER_NAME"))
    hosts = frag.get("HOSTS")
    hosts = hosts.split(",") if isinstance(hosts, str) else hosts   # the step sends "a,b"; fragments hold the list
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and HOST.fullmatch(h) for h in hosts):
        raise AgentError("bad hosts %r (flask-deploy:servers[].host: host names or IPv4 addresses)" % hosts)
    out = {"APP": app, "HEALTH_PATH": path, "SERVER_NAME": " ".join(names), "HOSTS": list(hosts)}
    tls = frag.get("TLS")   # HTTPS at the balancer (lb_tls.py): {"HSTS": seconds}
    if tls is not None:
        if not isinstance(tls, dict) or not isinstance(tls.get("HSTS"), int) or not 0 <= tls["HSTS"] <= 63072000:
            raise AgentError("bad TLS part %r (flask-deploy:tls.hstsMaxAgeSeconds: 0 to 63072000)" % (tls,))
        out["TLS"] = {"HSTS": tls["HSTS"]}
    if frag.get("ACME") is not None:   # its names' HTTP-01 challenges go to certbot (lb_acme.py)
        if frag["ACME"] is not True or names == ["_"] or any(n.startswith("*.") for n in names):
            raise AgentError("bad ACME part %r for %r (flask-deploy:serverName: DNS names, no wildcard)" % (frag["ACME"], frag.get("SERVER_NAME")))
        out["ACME"] = True
    return out


def maintenance_page(app: str) -> str:
    """The 503 page the balancer answers with while APP is in maintenance (lb_maintenance.py); root's."""
    return "/etc/fdeploy/haproxy/%s.maintenance.html" % app


def render(fragments: List[Dict[str, Any]], maintenance: Collection[str] = ()) -> str:
    """haproxy.cfg for FRAGMENTS (checked, sorted by app: the same inputs give the same bytes); the apps
    in MAINTENANCE answer every request with their page (HAProxy's own checks of the hosts go on)."""
    apps = sorted((check_fragment(f) for f in fragments), key=lambda f: f["APP"])
    out = [
        "# written by flask-deploy (lb-configure): edits are replaced on the next deploy",
        "global",
        "    log /dev/log local0",
        "    stats socket %s mode 660 level admin" % SOCKET,
        "    stats timeout 30s",
        "    server-state-file %s" % SERVER_STATE,
        "    user haproxy",
        "    group haproxy",
        "    daemon",
        "",
        "defaults",
        "    log global",
        "    load-server-state-from-file global",
        "    mode http",
        "    option httplog",
        "    option dontlognull",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    option redispatch",
        "    retries 2",
        "",
        "frontend fdeploy",
        "    bind :80",
        "    option forwardfor",
        # the hosts believe this header from the balancer alone (their nginx): never a client's
        "    http-request set-header X-Forwarded-Proto http",
    ]
    if any("TLS" in f for f in apps):   # each app's certificate in one folder; HAProxy picks it by SNI
        out += ["    bind :443 ssl crt %s alpn http/1.1" % TLS_CERTS,
                "    http-request set-header X-Forwarded-Proto https if { ssl_fc }"]
    for f in apps:   # before any app's routing: HTTP-01 on port 80 is never redirected, nor in maintenance
        if f.get("ACME"):   # the name without a port (a CA may send Host: name:80)
            out.append("    use_backend %s if !{ ssl_fc } { path_beg /.well-known/acme-challenge/ } { req.hdr(host),field(1,:) -i %s }"
                       % (CHALLENGE_BACKEND, f["SERVER_NAME"]))
    default = next((f for f in apps if f["SERVER_NAME"] == "_"), apps[0] if apps else None)
    for f in apps:
        if f is not default:
            for n in f["SERVER_NAME"].split():
                cond = "hdr_end(host) -i %s" % n[1:] if n.startswith("*.") else "hdr(host) -i %s" % n
                out.append("    use_backend %s if { %s }" % (backend(f["APP"]), cond))
    if default:
        out.append("    default_backend %s" % backend(default["APP"]))
    for f in apps:
        header = f["SERVER_NAME"].split()[0]
        header = "localhost" if header == "_" else header.replace("*.", "www.", 1)
        out += [
            "",
            "backend %s" % backend(f["APP"]),
            "    balance roundrobin",
            "    option httpchk",
            "    http-check send meth GET uri %s ver HTTP/1.1 hdr Host %s" % (f["HEALTH_PATH"], header),
            "    http-check expect status 200",
            "    default-server check inter 1s fall 2 rise 2",
        ]
        if "TLS" in f:
            out.append("    http-request redirect scheme https code 301 unless { ssl_fc }")
            if f["TLS"]["HSTS"]:
                out.append('    http-response set-header Strict-Transport-Security "max-age=%d" if { ssl_fc }' % f["TLS"]["HSTS"])
        if f["APP"] in maintenance:
            out.append('    http-request return status 503 content-type "text/html; charset=utf-8" hdr Retry-After 120 file %s'
                       % maintenance_page(f["APP"]))
        out += ["    server %s %s:80" % (server_name(i), h) for i, h in enumerate(f["HOSTS"])]
    if any(f.get("ACME") for f in apps):   # no check: certbot listens only while it validates
        out += ["", "backend %s" % CHALLENGE_BACKEND, "    server certbot 127.0.0.1:%d" % CHALLENGE_PORT]
    return "\n".join(out) + "\n"
