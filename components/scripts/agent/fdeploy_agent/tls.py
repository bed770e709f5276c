"""The app's HTTPS certificate (TlsCertificate, CertificateState), with Debian's certbot. An ACME
certificate is issued only when none covers exactly the wanted names from the wanted ACME directory
and is still valid; the last successful create's parameters are kept root-only in
/etc/fdeploy/<app>/tls.desired.json (read and written here only) for read and repair. certbot,
openssl, nginx and apt run through the Host seam.
  tls-create  create's params: APP, MODE ("custom"; absent = acme), CERT and KEY (custom: PEM chain
              and key, on stdin only), CERT_DIR, CERT_NAME, DOMAINS (space-separated), ACME_SERVER,
              EMAIL ("" = none), CA_BUNDLE (PEM, "" = the system's CAs), WEBROOT, SITE (the HTTPS
              site), SITE_ISSUING (the HTTP site with the challenge location; components/nginx-site.ts).
              acme: certbot installed, the webroot, the renewal deploy hook, certbot.timer, a private
              ACME CA's bundle; a certificate issued through HTTP-01 with the app's own site in force
              meanwhile (HTTP-only before the first one), so nginx never stops; certbot refusing puts
              the site before back and names each refused name and the CA's reason.
              custom: your chain and key, checked to belong together, kept in /etc/fdeploy/<app>/tls/.
  tls-read    --app APP: {"certificate": valid|missing|expired|names-differ, "notAfter", "names"}
  tls-repair  --app APP: create again with the last create's parameters, then read (up --refresh)
  tls-delete  --app APP: the app's certificate, webroot and CA bundle go, unless its site still
              uses the certificate (tls.mode off, or destroy)
The certbot parts (check_acme, decide, certbot_args, prepare_certbot, run_certbot, failure, tls_delete)
serve tls.mode acme at a fleet's balancer too (lb_acme.py: HTTP-01 through HAProxy instead of the webroot).
Renewal is certbot.timer's (twice a day); HOOK reloads nginx after a renewal. The hook stays a
two-line sh script: certbot runs the executables in renewal-hooks/deploy/, outside any deploy,
and no agent bundle lives at a fixed path.
"""
import calendar
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import app as apps
from . import apt, lease
from . import site as sites
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
ACME_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
EMAIL = re.compile(r"[^\s@'\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
RENEW_BUNDLE = "/etc/fdeploy/acme-ca-bundle.pem"
DROPIN = "/etc/systemd/system/certbot.service.d/fdeploy-acme-ca.conf"
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
HOOK = "/etc/letsencrypt/renewal-hooks/deploy/fdeploy-nginx-reload"
HOOK_TEXT = (b"#!/bin/sh\n# flask-deploy (the agent's tls-create): a renewed certificate goes live with a graceful reload\n"
             b"# (no dropped connection); a configuration nginx rejects is not loaded.\nnginx -t -q && systemctl reload nginx\n")
DROPIN_TEXT = ("# flask-deploy (tls-create): CAs of private ACME servers, for certbot renew only\n"
               "[Service]\nEnvironment=REQUESTS_CA_BUNDLE=%s\n" % RENEW_BUNDLE)


def cert_name(app: str) -> str:
    return "fdeploy-" + app


def live_dir(app: str) -> str:
    return "/etc/letsencrypt/live/%s" % cert_name(app)


def custom_dir(app: str) -> str:
    return "/etc/fdeploy/%s/tls" % app


@dataclass(frozen=True)
class Request:
    app: str
    custom: bool
    domains: List[str]   # sorted, unique
    server: str
    email: str

    @property
    def want(self) -> str:
        return " ".join(self.domains)


def check(params: Dict[str, Any]) -> Request:
    """Create's parameters, refused with the setting to fix (they come from the stack's config)."""
    app = apps.check_name(params.get("APP"))
    custom = params.get("MODE", "acme") == "custom"
    if params.get("MODE", "acme") not in ("acme", "custom", ""):
        raise AgentError("bad TLS mode %r (flask-deploy:tls.mode: acme, custom or off)" % (params.get("MODE"),))
    wanted = domains(params.get("DOMAINS", ""))
    server, email = str(params.get("ACME_SERVER", "")), str(params.get("EMAIL", ""))
    if custom:
        if params.get("CERT_DIR") != custom_dir(app):
            raise AgentError("bad certificate folder %r (expected %s)" % (params.get("CERT_DIR"), custom_dir(app)))
        return Request(app=app, custom=True, domains=wanted, server=server, email=email)
    if params.get("CERT_NAME") != cert_name(app):
        raise AgentError("bad certificate name %r (expected %s)" % (params.get("CERT_NAME"), cert_name(app)))
    if params.get("WEBROOT") != "/var/lib/fdeploy-acme/" + app:
        raise AgentError("bad webroot %r (expected /var/lib/fdeploy-acme/%s)" % (params.get("WEBROOT"), app))
    return check_acme(app, " ".join(wanted), server, email)


def domains(raw: Any) -> List[str]:
    """serverName's names for a certificate: sorted, unique; refused naming the setting."""
    names = str(raw).split()
    for d in names:
        if not DOMAIN.fullmatch(d) or "." not in d:
            raise AgentError("bad domain name %r (flask-deploy:serverName: DNS names like app.example.com, separated by spaces)" % d)
    if not names:
        raise AgentError("no domain names for the certificate (flask-deploy:serverName: e.g. 'example.com www.example.com')")
    return sorted(set(names))


def check_acme(app: str, names: Any, server: Any, email: Any) -> Request:
    """An ACME request for APP (the site's, or the balancer's: lb_acme.py), refused with the setting to fix."""
    wanted = domains(names)
    server, email = str(server or ""), str(email or "")
    if not ACME_URL.fullmatch(server):
        raise AgentError("bad ACME directory URL %r (flask-deploy:tls.acmeServer: an https:// URL, e.g. "
                         "https://acme-v02.api.letsencrypt.org/directory)" % server)
    if email and not EMAIL.fullmatch(email):
        raise AgentError("bad e-mail address %r (flask-deploy:tls.email: e.g. admin@example.com, or unset)" % email)
    return Request(app=app, custom=False, domains=wanted, server=server, email=email)


@dataclass(frozen=True)
class Cert:
    names: str      # the DNS names it covers, sorted, space-separated
    not_after: str  # openssl's notAfter
    valid: bool     # not expired


def expires(not_after: str) -> Optional[float]:
    """openssl's notAfter (e.g. 'Dec  7 20:05:00 2026 GMT') as seconds since the epoch."""
    try:
        return calendar.timegm(time.strptime(not_after.replace(" GMT", ""), "%b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def exists(host: Host, path: str) -> bool:
    """A certificate file is there: certbot's live/ files are links into archive/ (root's folders,
    no app writes there), so these are followed."""
    return os.path.isfile(host.path(path))


def inspect(host: Host, path: str, now: Optional[float] = None) -> Optional[Cert]:
    """The certificate in PATH (a PEM file), None when there is none."""
    if not exists(host, path):
        return None
    r = host.run(["openssl", "x509", "-in", host.path(path), "-noout", "-enddate", "-ext", "subjectAltName"])
    if r.returncode != 0:
        return None
    text = r.stdout or ""
    names = sorted({n.strip()[4:] for n in re.split(r"[,\n]", text) if n.strip().startswith("DNS:")})
    m = re.search(r"^notAfter=(.*)$", text, re.M)
    not_after = m.group(1).strip() if m else ""
    end = expires(not_after)
    if end is None:   # a date this parser does not know: openssl's own check
        valid = host.run(["openssl", "x509", "-in", host.path(path), "-noout", "-checkend", "0"]).returncode == 0
    else:
        valid = end > (time.time() if now is None else now)
    return Cert(names=" ".join(names), not_after=not_after, valid=valid)


def renewal_value(host: Host, app: str, key: str) -> Optional[str]:
    """KEY of certbot's renewal config of the app's certificate ("" unset), None without one."""
    text = read_regular(host.path("/etc/letsencrypt/renewal/%s.conf" % cert_name(app)))
    if text is None:
        return None
    m = re.search(r"^%s = (.*)$" % re.escape(key), text.decode(errors="replace"), re.M)
    return m.group(1).strip() if m else ""


def renewal_server(host: Host, app: str) -> Optional[str]:
    """The ACME directory certbot renews the app's certificate from, None without a renewal config."""
    return renewal_value(host, app, "server")


def webroot(app: str) -> List[str]:
    """certbot's HTTP-01 through the app's nginx site (the single server's)."""
    return ["--webroot", "--webroot-path", "/var/lib/fdeploy-acme/" + app]


def certbot_args(req: Request, force: bool, auth: Optional[List[str]] = None) -> List[str]:
    """certonly for REQ; AUTH: how HTTP-01 is answered (default: the app's nginx webroot)."""
    args = ["certonly", "--non-interactive", "--agree-tos", "--no-eff-email", "--cert-name", cert_name(req.app),
            "--server", req.server] + (auth or webroot(req.app)) + ["--key-type", "ecdsa"]
    if force:
        args.append("--force-renewal")
    args += ["--email", req.email] if req.email else ["--register-unsafely-without-email"]
    for d in req.domains:
        args += ["-d", d]
    return args


def decide(host: Host, req: Request, auth: List[str], now: Optional[float] = None) -> Dict[str, Any]:
    """Keep the app's certificate (same names, directory and way of validating, still valid), or issue
    one: forced when certbot would keep it (same names, but another directory, another AUTH, or expired)."""
    cert = inspect(host, live_dir(req.app) + "/cert.pem", now)
    server = renewal_server(host, req.app)
    have = cert.names if cert else ""
    same = cert is not None and server is not None and have == req.want
    if same and cert and server == req.server and cert.valid and renewal_value(host, req.app, "authenticator") == auth[0][2:]:
        return {"action": "keep", "want": req.want, "have": have, "notAfter": cert.not_after}
    return {"action": "issue", "want": req.want, "have": have, "force": same, "certbot": certbot_args(req, same, auth)}


def plan(host: Host, req: Request, site: str, site_issuing: str, now: Optional[float] = None) -> Dict[str, Any]:
    """decide(), and the site in force while the CA validates: the HTTPS site with the current
    certificate, with tls.mode custom's own certificate, or HTTP only."""
    decided = decide(host, req, webroot(req.app), now)
    if decided["action"] == "keep":
        return decided
    live, own = live_dir(req.app), custom_dir(req.app)
    if exists(host, live + "/fullchain.pem"):
        kind, issuing = "https", site
    elif exists(host, own + "/fullchain.pem") and exists(host, own + "/privkey.pem"):
        kind, issuing = "custom", site.replace(live + "/", own + "/")
    else:
        kind, issuing = "http", site_issuing
    return dict(decided, issuing=kind, issuingSite=issuing)


def refused(output: str) -> str:
    """'name (reason); …' for each name the CA refused, from certbot's Domain:/Detail: lines."""
    out, domain = [], ""
    for line in output.splitlines():
        m = re.match(r"^ *Domain: *(\S+)", line)
        if m:
            domain = m.group(1)
            continue
        m = re.match(r"^ *Detail: *(.*)$", line)
        if m and domain:
            out.append("%s (%s)" % (domain, m.group(1)[:160]))
            domain = ""
    return "; ".join(out)


def failure(req: Request, output: str, previous: str) -> Dict[str, str]:
    """certbot's lines worth showing, and the error naming each refused name and what stays in force."""
    lines = output.splitlines()
    why = [ln for ln in lines if re.match(r"^ *(Domain|Type|Detail|Hint):", ln) or re.search(r"Error|error", ln)]
    why = [ln for ln in why if "letsencrypt.log" not in ln][:20] or lines[-15:]
    in_force = " with the previous certificate (%s)" % previous if previous else " (HTTP)"
    return {"why": "\n".join(why),
            "error": "no certificate for %s from %s: %s (details in /var/log/letsencrypt/letsencrypt.log). "
                     "The site that was in force before stays in force%s." % (
                         req.want, req.server, refused(output) or "certbot failed, see above", in_force)}


def desired_path(app: str) -> str:
    return "/etc/fdeploy/%s/tls.desired.json" % app


def load_desired(host: Host, app: str) -> Optional[Dict[str, Any]]:
    raw = read_regular(host.path(desired_path(app)))
    if raw is None:
        return None
    try:
        desired = json.loads(raw)
    except ValueError:
        raise AgentError("%s is damaged (not JSON); run pulumi up to write it again" % desired_path(app))
    if not isinstance(desired, dict):
        raise AgentError("%s is damaged (not a JSON object); run pulumi up to write it again" % desired_path(app))
    return desired


def read_state(host: Host, app: str, now: Optional[float] = None) -> Dict[str, str]:
    """The certificate on the server against the names the last create wanted (your own: its names
    are checked at preview)."""
    desired = load_desired(host, app)
    path, want = live_dir(app) + "/cert.pem", ""
    if desired is not None:
        want = " ".join(sorted(set(str(desired.get("DOMAINS", "")).split())))
        if desired.get("MODE") == "custom":
            path, want = custom_dir(app) + "/fullchain.pem", ""
    cert = inspect(host, path, now)
    if cert is None:
        return {"certificate": "missing", "notAfter": "", "names": ""}
    state = "expired" if not cert.valid else "names-differ" if want and cert.names != want else "valid"
    return {"certificate": state, "notAfter": cert.not_after, "names": cert.names}


def renewal_trust(host: Host) -> bool:
    """certbot.service's drop-in and bundle from the acme-ca.pem of every app; True when the drop-in changed."""
    cas = []
    etc = host.path("/etc/fdeploy")
    for name in sorted(os.listdir(etc)) if os.path.isdir(etc) else []:
        pem = read_regular(os.path.join(etc, name, "acme-ca.pem"))
        if apps.NAME.fullmatch(name) and pem is not None:
            cas.append(pem)
    dropin = host.path(DROPIN)
    if not cas:
        changed = os.path.lexists(dropin)
        for p in (dropin, host.path(RENEW_BUNDLE)):
            if os.path.lexists(p):
                os.unlink(p)
        return changed
    system = read_regular(host.path(SYSTEM_CAS)) or b""
    write_atomic(host.path(RENEW_BUNDLE), b"".join([system] + cas), 0o644)
    own_dir(os.path.dirname(dropin), 0o755)
    return write_atomic(dropin, DROPIN_TEXT.encode(), 0o644)


def _app(params: Dict[str, Any]) -> str:
    return apps.check_name(params.get("APP"))


def tls_plan(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Keep: the parameters are kept (read, repair). Issue: the site in force is recorded (site.py)
    and the site to validate with goes in its place (bash then tests it and reloads nginx)."""
    req = check(params)
    decided = plan(host, req, str(params.get("SITE", "")), str(params.get("SITE_ISSUING", "")))
    if decided["action"] == "keep":
        keep_desired(host, req.app, params)
        return decided
    decided["changed"] = sites.put(host, req.app, decided.pop("issuingSite"), save=True, desired=False)
    ca = "/etc/fdeploy/%s/acme-ca.pem" % req.app
    decided["caBundle"] = ca if read_regular(host.path(ca)) is not None else ""
    return decided


def tls_issued(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """After certbot issued: the HTTPS site in place (tested and loaded by the caller: the
    certificate is new even when the site is not), tls.mode custom's own certificate gone. The
    record of the site before this run stays until the caller drops it."""
    req = check(params)
    changed = sites.put(host, req.app, str(params.get("SITE", "")), save=False, desired=False)
    if os.path.isdir(host.path(custom_dir(req.app))):
        shutil.rmtree(host.path(custom_dir(req.app)))
    cert = inspect(host, live_dir(req.app) + "/cert.pem")
    return {"changed": changed, "want": req.want, "notAfter": cert.not_after if cert else ""}


def tls_trust(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = _app(params)
    conf = host.path("/etc/fdeploy/" + app)
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(conf, 0o700)
    ca = str(params.get("CA_BUNDLE", ""))
    if ca:
        if "-----BEGIN CERTIFICATE-----" not in ca:
            raise AgentError("the CA bundle is not PEM (flask-deploy:tls.caBundle: a file with -----BEGIN CERTIFICATE----- blocks)")
        write_atomic(conf + "/acme-ca.pem", (ca + "\n").encode(), 0o644)
    elif os.path.lexists(conf + "/acme-ca.pem"):
        os.unlink(conf + "/acme-ca.pem")
    changed = renewal_trust(host)
    if changed:
        host.run(["systemctl", "daemon-reload"])
    return {"changed": changed, "caBundle": "/etc/fdeploy/%s/acme-ca.pem" % app if ca else ""}


def keep_desired(host: Host, app: str, params: Dict[str, Any]) -> None:
    """What the last successful create deployed, for read and repair (a failed create is not kept:
    the stack's state keeps the previous parameters too). Root-only: tls.mode custom's key is in it."""
    own_dir(host.path("/etc/fdeploy/" + app), 0o700)
    write_atomic(host.path(desired_path(app)), json.dumps(params, sort_keys=True).encode(), 0o600)


def tls_fallback(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """The site put back names a certificate that is gone (deleted by hand): the HTTP site with the
    challenge location (SITE_ISSUING) in force instead; bash tests and reloads."""
    req = check(params)
    return {"changed": sites.put(host, req.app, str(params.get("SITE_ISSUING", "")), save=False, desired=False)}


def tls_read(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    return dict(read_state(host, _app(params)))


def tls_failure(host: Host, req: Request, output: str) -> Dict[str, str]:
    """After a failed issuance (the site before put back): certbot's lines worth showing, and the error."""
    cert = inspect(host, live_dir(req.app) + "/cert.pem")
    return failure(req, output, cert.names if cert and exists(host, live_dir(req.app) + "/fullchain.pem") else "")


def tls_forget(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """delete (tls.mode off, or destroy), after the site stopped using the certificate."""
    app = _app(params)
    site = (read_regular(host.path("/etc/nginx/sites-available/fdeploy-%s.conf" % app)) or b"").decode(errors="replace")
    if (live_dir(app) + "/") in site or (custom_dir(app) + "/") in site:
        return {"kept": True, "certbotDelete": ""}
    for p in ("/var/lib/fdeploy-acme/" + app, "/etc/fdeploy/%s/acme-ca.pem" % app, desired_path(app), custom_dir(app)):
        full = host.path(p)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        elif os.path.lexists(full):
            os.unlink(full)
    if renewal_trust(host):
        host.run(["systemctl", "daemon-reload"])
    renewal = os.path.lexists(host.path("/etc/letsencrypt/renewal/%s.conf" % cert_name(app)))
    return {"kept": False, "certbotDelete": cert_name(app) if renewal else ""}


def serial(host: Host, path: str) -> str:
    """'serial=… notAfter=…' of the certificate in PATH, for the log."""
    r = host.run(["openssl", "x509", "-in", host.path(path), "-noout", "-serial", "-enddate"])
    return " ".join((r.stdout or "").split())


def put_back(host: Host, req: Request, params: Dict[str, Any], issuing: str, log: Log) -> None:
    """The site in force before this run back, tested and loaded; when it names a certificate that
    is gone (deleted by hand) and none is left to serve HTTPS with, the HTTP site meanwhile."""
    sites.restore(host, req.app)
    if sites.test(host)[0]:
        sites.reload(host)
    elif issuing == "http":
        log("the previous site's certificate files are missing; the HTTP site stays in force")
        tls_fallback(host, params, log, 0)
        if sites.test(host)[0]:
            sites.reload(host)


REJECTED = "nginx -t rejected the site for HTTPS (output above); the previous site stays in force"


def prepare_certbot(host: Host, params: Dict[str, Any], hook: str, hook_text: bytes, log: Log) -> None:
    """certbot installed, the private ACME CA's bundle (CA_BUNDLE), the renewal deploy HOOK, certbot.timer on."""
    apt.install_missing(host, "certbot", ["certbot"], log)
    tls_trust(host, params, log, 0)
    os.makedirs(host.path(os.path.dirname(hook)), 0o755, exist_ok=True)
    write_atomic(host.path(hook), hook_text, 0o755)
    if host.run(["systemctl", "enable", "--now", "--quiet", "certbot.timer"]).returncode != 0:
        log("warning: certbot.timer could not be enabled (systemctl enable --now certbot.timer); renewals need it")


def run_certbot(host: Host, argv: List[str], app: str, env: Sequence[str] = ()) -> Any:
    """certbot ARGV (with ENV: NAME=value), trusting the app's private ACME CA if it has one; what certbot
    writes is root's alone."""
    ca = "/etc/fdeploy/%s/acme-ca.pem" % app
    env = list(env) + (["REQUESTS_CA_BUNDLE=" + ca] if read_regular(host.path(ca)) is not None else [])
    old = os.umask(0o077)
    try:
        return host.run((["env"] + env if env else []) + ["certbot"] + argv, merge_output=True)
    finally:
        os.umask(old)


def create_acme(host: Host, req: Request, params: Dict[str, Any], log: Log) -> Dict[str, Any]:
    for d in ("/var/lib/fdeploy-acme", "/var/lib/fdeploy-acme/" + req.app):
        own_dir(host.path(d), 0o755)
    prepare_certbot(host, params, HOOK, HOOK_TEXT, log)
    decided = tls_plan(host, params, log, 0)
    if decided["action"] == "keep":
        log("certificate %s for %s: up to date, notAfter=%s" % (cert_name(req.app), req.want, decided["notAfter"]))
        return {"action": "keep", "want": req.want, "notAfter": decided["notAfter"]}
    issuing = decided["issuing"]
    again = lambda: put_back(host, req, params, issuing, log)  # noqa: E731
    if decided["changed"]:
        sites.load_checked(host, req.app, log, REJECTED, again)
    log("requesting a certificate for %s from %s (HTTP-01 through nginx)" % (req.want, req.server))
    r = run_certbot(host, decided["certbot"], req.app)
    if r.returncode != 0:
        again()
        why = tls_failure(host, req, r.stdout or "")
        log(why["why"])
        raise AgentError(why["error"])
    tls_issued(host, params, log, 0)
    sites.load_checked(host, req.app, log, REJECTED, again)   # the site may be unchanged: the certificate is new
    sites.unlink(host, sites.saved_path(req.app))
    keep_desired(host, req.app, params)
    log("certificate %s for %s issued by %s: %s" % (cert_name(req.app), req.want, req.server, serial(host, live_dir(req.app) + "/cert.pem")))
    cert = inspect(host, live_dir(req.app) + "/cert.pem")
    return {"action": "issue", "want": req.want, "notAfter": cert.not_after if cert else ""}


def openssl_out(host: Host, argv: List[str]) -> Optional[str]:
    r = host.run(["openssl"] + argv)
    return (r.stdout or "") if r.returncode == 0 else None


def create_custom(host: Host, req: Request, params: Dict[str, Any], log: Log) -> Dict[str, Any]:
    """tls.mode custom: the chain and key checked (a PEM certificate, the key its own) in a new folder
    beside the ones in force before anything changes, then swapped in; a site or certificate nginx
    rejects puts the previous ones back. An ACME certificate of the app is no longer used."""
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path("/etc/fdeploy/" + req.app), 0o700)
    folder = host.path(custom_dir(req.app))
    own_dir(folder, 0o700)
    names = ("fullchain.pem", "privkey.pem")
    new = {"fullchain.pem": (str(params.get("CERT", "")) + "\n").encode(), "privkey.pem": (str(params.get("KEY", "")) + "\n").encode()}
    tmp = tempfile.mkdtemp(prefix=".new.", dir=folder)
    try:
        for n in names:
            write_atomic(os.path.join(tmp, n), new[n], 0o600)
        if openssl_out(host, ["x509", "-in", os.path.join(tmp, names[0]), "-noout"]) is None:
            raise AgentError("tls.certificate is not a PEM certificate (flask-deploy:tls.certificate: the chain, server certificate first)")
        pub = openssl_out(host, ["x509", "-in", os.path.join(tmp, names[0]), "-noout", "-pubkey"])
        if pub is None or pub != openssl_out(host, ["pkey", "-in", os.path.join(tmp, names[1]), "-pubout"]):
            raise AgentError("tls.privateKey does not belong to the certificate in tls.certificate (flask-deploy:tls.privateKey)")
    finally:
        shutil.rmtree(tmp)
    before = {n: read_regular(os.path.join(folder, n)) for n in names}

    def again() -> None:
        for n in names:
            if before[n] is None:
                sites.unlink(host, custom_dir(req.app) + "/" + n)
            else:
                write_atomic(os.path.join(folder, n), before[n], 0o600)
        sites.restore(host, req.app)
        if sites.test(host)[0]:
            sites.reload(host)

    changed = False
    for n in names:
        changed = write_atomic(os.path.join(folder, n), new[n], 0o600) or changed
    site_changed = sites.put(host, req.app, str(params.get("SITE", "")), save=True, desired=False)
    if changed or site_changed:
        sites.load_checked(host, req.app, log, "nginx -t rejected the site or the certificate in tls.certificate (output above); "
                           "the previous ones stay in force", again)
    sites.unlink(host, sites.saved_path(req.app))
    keep_desired(host, req.app, params)
    if host.which("certbot") and os.path.lexists(host.path("/etc/letsencrypt/renewal/%s.conf" % cert_name(req.app))):
        certbot_delete(host, cert_name(req.app), log)
    log("certificate (your own) for %s in force: %s" % (req.want, serial(host, custom_dir(req.app) + "/fullchain.pem")))
    return {"action": "custom", "want": req.want, "changed": changed}


def certbot_delete(host: Host, name: str, log: Log) -> None:
    if host.run(["certbot", "delete", "--non-interactive", "--cert-name", name], merge_output=True).returncode != 0:
        log("warning: certbot delete --cert-name %s failed" % name)


def tls_create(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """TlsCertificate's step: bad parameters are refused before anything changes."""
    req = check(params)
    apps.load(host, req.app)
    with deploy_lock(host, req.app, lock_wait, log, deploy=lease.deploy_of(params)):
        return (create_custom if req.custom else create_acme)(host, req, params, log)


def tls_repair(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """`pulumi up --refresh` (CertificateState): a missing or expired certificate is issued again
    with the last create's parameters; then what tls-read reports."""
    app = _app(params)
    desired = load_desired(host, app)
    if desired is None:
        raise AgentError("no HTTPS certificate was deployed for '%s' on this server (TlsCertificate never ran); run pulumi up" % app)
    tls_create(host, desired, log, lock_wait)
    return dict(read_state(host, app))


def tls_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """TlsCertificate's delete (tls.mode off, or destroy), after the site stopped using the certificate."""
    forget = tls_forget(host, params, log, lock_wait)
    app = _app(params)
    if forget["kept"]:
        log("the site of %s still uses the certificate %s; kept" % (app, cert_name(app)))
    else:
        if forget["certbotDelete"] and host.which("certbot"):
            certbot_delete(host, forget["certbotDelete"], log)
        log("HTTPS certificate of %s removed" % app)
    return {"kept": forget["kept"]}
