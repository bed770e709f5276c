"""HTTPS at the balancer (README "Scale out"): with several app servers, TLS ends in HAProxy on the
balancer host with the stack's own certificate (tls.mode custom): the chain and key, checked to belong
together before anything changes, kept root-only as one PEM in /etc/fdeploy/haproxy/certs/<app>.pem
(HAProxy reads it as root when it loads its config; it picks the app's certificate by SNI). The app's
backend redirects plain HTTP to HTTPS (haproxy_config.py). lb-configure's params TLS_CERT, TLS_KEY
(on stdin only) and TLS_HSTS (seconds, 0: no header); without TLS_CERT the app's certificate goes."""
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional

from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .tls import openssl_out

CERTS = "/etc/fdeploy/haproxy/certs"


def pem_path(app: str) -> str:
    return "%s/%s.pem" % (CERTS, app)


def part(params: Dict[str, Any]) -> Dict[str, Any]:
    """The fragment's TLS part for PARAMS: {"TLS": {"HSTS": seconds}} with a certificate (TLS_CERT, or
    TLS_MODE acme: lb_acme.py, which adds "ACME": true), else {}."""
    mode = params.get("TLS_MODE", "")
    if mode not in ("", "acme") or (mode == "acme" and params.get("TLS_CERT")):
        raise AgentError("bad TLS_MODE %r (flask-deploy:tls.mode: acme, custom or off)" % (mode,))
    if not params.get("TLS_CERT") and mode != "acme":
        return {}
    hsts = str(params.get("TLS_HSTS", "0"))
    if not hsts.isdigit() or int(hsts) > 63072000:
        raise AgentError("bad HSTS max-age %r (flask-deploy:tls.hstsMaxAgeSeconds: 0 to 63072000)" % hsts)
    return dict({"TLS": {"HSTS": int(hsts)}}, **({"ACME": True} if mode == "acme" else {}))


def checked_pem(host: Host, params: Dict[str, Any]) -> Optional[bytes]:
    """The PEM HAProxy loads (chain, then key) from PARAMS, checked with openssl; None without TLS_CERT."""
    cert, key = str(params.get("TLS_CERT") or ""), str(params.get("TLS_KEY") or "")
    if not cert:
        return None
    tmp = tempfile.mkdtemp(prefix="fdeploy-lb-tls-")
    try:
        c, k = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        write_atomic(c, cert.strip().encode() + b"\n", 0o600)
        write_atomic(k, key.strip().encode() + b"\n", 0o600)
        if openssl_out(host, ["x509", "-in", c, "-noout"]) is None:
            raise AgentError("tls.certificate is not a PEM certificate (flask-deploy:tls.certificate: the chain, server certificate first)")
        pub = openssl_out(host, ["x509", "-in", c, "-noout", "-pubkey"])
        if pub is None or pub != openssl_out(host, ["pkey", "-in", k, "-pubout"]):
            raise AgentError("tls.privateKey does not belong to the certificate in tls.certificate (flask-deploy:tls.privateKey)")
    finally:
        shutil.rmtree(tmp)
    return cert.strip().encode() + b"\n" + key.strip().encode() + b"\n"


def put(host: Host, app: str, pem: Optional[bytes]) -> "tuple[bool, Callable[[], None]]":
    """The app's certificate in place (PEM None: removed): (changed, a function that puts the previous back)."""
    path = host.path(pem_path(app))
    old = read_regular(path)
    if pem is not None:
        own_dir(host.path(CERTS), 0o700)
        write_atomic(path, pem, 0o600)
    elif old is not None:
        os.unlink(path)

    def restore() -> None:
        if old is not None:
            write_atomic(path, old, 0o600)
        elif os.path.exists(path):
            os.unlink(path)
    return old != pem, restore
