"""tls.mode acme at the balancer (README "Scale out"): the app's certificate from the ACME CA, issued on the
balancer host with tls.py's certbot parts (the same checks, keep-or-issue decision, private-CA trust, timer
and error messages as a single server's). HTTP-01 is answered by certbot's standalone server on a loopback
port (haproxy_config.CHALLENGE_PORT), where HAProxy sends port 80's /.well-known/acme-challenge/ requests for
the app's names: HAProxy serves on through issuance and every renewal (certbot.timer validates the same way:
certbot keeps the way in the renewal config). The chain and key become the app's PEM (lb_tls.py); after a
renewal, HOOK does that and reloads HAProxy gracefully.
lb-configure's params: TLS_MODE "acme", SERVER_NAME (the names), ACME_SERVER, EMAIL ("" none), CA_BUNDLE
(PEM, "" the system's CAs), TLS_HSTS."""
import os
from typing import Any, Callable, Dict, Optional

from . import tls
from .errors import AgentError
from .fsutil import read_regular
from .haproxy_config import CHALLENGE_PORT
from .host import Host
from .lb_tls import pem_path

Log = Callable[[str], None]
Configure = Callable[[Dict[str, Any], Optional[bytes]], bool]
STANDALONE = ["--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", str(CHALLENGE_PORT)]
# lb-configure puts the PEM in place itself, under the lock the hook would wait for
IN_CONFIGURE = "FDEPLOY_LB_CONFIGURE=1"
HOOK = "/etc/letsencrypt/renewal-hooks/deploy/fdeploy-haproxy-pem"
# A sh script, as tls.HOOK: certbot runs it outside any deploy, and no agent bundle lives at a fixed path.
HOOK_TEXT = b"""#!/bin/sh
# flask-deploy (lb-configure, tls.mode acme at the balancer): a renewed certificate of an app this balancer
# serves becomes its HAProxy PEM (chain, then key; root's alone), loaded by a graceful reload once
# `haproxy -c` passes; one change of HAProxy's files at a time (the agent's flock on /etc/fdeploy/haproxy).
[ -z "${FDEPLOY_LB_CONFIGURE:-}" ] || exit 0
app=${RENEWED_LINEAGE##*/live/fdeploy-}
case $app in ''|*[!a-z0-9-]*) exit 0;; esac
grep -qsF '"ACME": true' "/etc/fdeploy/haproxy/$app.json" || exit 0
exec 9</etc/fdeploy/haproxy && flock -w 300 9 || exit 1
umask 077
# written beside the certificates' folder (HAProxy loads every file in it), then renamed in
new=/etc/fdeploy/haproxy/.$app.pem.new
cat "$RENEWED_LINEAGE/fullchain.pem" "$RENEWED_LINEAGE/privkey.pem" >"$new" && mv "$new" "/etc/fdeploy/haproxy/certs/$app.pem" &&
  haproxy -c -q -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy
"""


def request(params: Dict[str, Any]) -> Optional[tls.Request]:
    """The ACME request of lb-configure's PARAMS (refused naming the setting), None without TLS_MODE acme."""
    if params.get("TLS_MODE") != "acme":
        return None
    return tls.check_acme(str(params.get("APP", "")), params.get("SERVER_NAME", ""), params.get("ACME_SERVER"), params.get("EMAIL"))


def prepare(host: Host, params: Dict[str, Any], log: Log) -> None:
    """certbot, the private ACME CA's bundle, the renewal hook and certbot.timer (each idempotent)."""
    tls.prepare_certbot(host, params, HOOK, HOOK_TEXT, log)


def live_pem(host: Host, app: str) -> bytes:
    """certbot's chain, then key, of the app's certificate (live/ links into archive/: root's folders)."""
    parts = []
    for name in ("fullchain.pem", "privkey.pem"):
        real = os.path.realpath(host.path("%s/%s" % (tls.live_dir(app), name)))
        data = read_regular(real) if real.startswith(host.path("/etc/letsencrypt/archive/")) else None
        if data is None:
            raise AgentError("the certificate %s is incomplete (no %s); remove it with certbot delete --cert-name %s, then "
                             "run pulumi up" % (tls.live_dir(app), name, tls.cert_name(app)))
        parts.append(data)
    return b"".join(parts)


def certify(host: Host, req: tls.Request, frag: Dict[str, Any], log: Log, configure: Configure, put_back: Callable[[], None]) -> bool:
    """The app's part FRAG in force with its ACME certificate (CONFIGURE(part, pem) writes, checks and loads
    them): the one it has while current, else one issued with the challenge route in force meanwhile (and
    HTTPS with the certificate in force before, if any); certbot refusing: PUT_BACK, the error names why."""
    decided = tls.decide(host, req, STANDALONE)
    if decided["action"] == "keep":
        log("certificate %s for %s: up to date, notAfter=%s" % (tls.cert_name(req.app), req.want, decided["notAfter"]))
        return configure(frag, live_pem(host, req.app))
    before = read_regular(host.path(pem_path(req.app)))
    cert = tls.inspect(host, tls.live_dir(req.app) + "/cert.pem")
    previous = "" if before is None else cert.names if cert else "tls.certificate's"
    configure(frag if before is not None else {k: v for k, v in frag.items() if k != "TLS"}, before)
    log("requesting a certificate for %s from %s (HTTP-01 through HAProxy to certbot on 127.0.0.1:%d)" % (req.want, req.server, CHALLENGE_PORT))
    r = tls.run_certbot(host, decided["certbot"], req.app, env=[IN_CONFIGURE])
    if r.returncode != 0:
        put_back()
        why = tls.failure(req, r.stdout or "", previous)
        log(why["why"])
        raise AgentError(why["error"])
    configure(frag, live_pem(host, req.app))
    log("certificate %s for %s issued by %s: %s" % (tls.cert_name(req.app), req.want, req.server,
                                                   tls.serial(host, tls.live_dir(req.app) + "/cert.pem")))
    return True


def forget(host: Host, app: str, log: Log) -> None:
    """The app's ACME certificate, its renewal and private-CA bundle gone from this balancer (tls.mode custom
    or off, the app's part deleted); nothing to do without one."""
    conf = "/etc/fdeploy/" + app
    if tls.renewal_server(host, app) is None and not os.path.lexists(host.path(conf + "/acme-ca.pem")):
        return
    tls.tls_delete(host, {"APP": app}, log, 0)
    try:
        os.rmdir(host.path(conf))   # made for the CA bundle alone: the app does not run here
    except OSError:
        pass
