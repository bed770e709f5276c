"""The end-to-end check after a deploy (`health`, components/health-check.ts): a request on this server
through nginx (port 80 with the site's server name; SCHEME https: port 443) to the app's health path
must answer 2xx within the timeout. On failure: the HTTP status, a body excerpt and the app's journal."""
import re
import time
from typing import Any, Callable, Dict, List

from . import app as apps
from .errors import AgentError
from .host import Host
from .slotcheck import app_error, journal, probe_result


def probe_argv(host_header: str, path: str, scheme: str) -> List[str]:
    curl = ["curl", "-sS", "-w", "\n%{http_code}", "--max-time", "5"]
    if scheme == "https":   # port 80 only redirects then; the certificate is the tls step's concern
        return curl + ["--resolve", "%s:443:127.0.0.1" % host_header, "--insecure", "https://%s%s" % (host_header, path)]
    return curl + ["-H", "Host: " + host_header, "http://127.0.0.1" + path]


def health(host: Host, params: Dict[str, Any], log: Callable[[str], None], lock_wait: int,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """params APP, HOST_HEADER, HEALTH_PATH, HEALTH_TIMEOUT, SCHEME (optional: http | https)."""
    app = apps.check_name(params.get("APP"))
    path, name = str(params.get("HEALTH_PATH", "")), str(params.get("HOST_HEADER", ""))
    timeout, scheme = str(params.get("HEALTH_TIMEOUT", "")), str(params.get("SCHEME") or "http")
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", path):
        raise AgentError("the health path is %r: flask-deploy:healthPath must be a URL path such as /health" % path)
    if not re.fullmatch(r"[A-Za-z0-9.-]+", name):
        raise AgentError("the host name %r cannot be checked: flask-deploy:serverName must be a DNS name or _" % name)
    if not re.fullmatch(r"[0-9]{1,4}", timeout) or scheme not in ("http", "https"):
        raise AgentError("bad health check parameters (HEALTH_TIMEOUT %r, SCHEME %r)" % (timeout, scheme))
    deadline = clock() + int(timeout)
    while True:
        r = host.run(probe_argv(name, path, scheme), merge_output=True)
        code, body = probe_result((r.stdout or "").encode())
        if code.startswith("2"):
            log("healthy through nginx%s: HTTP %s" % (" (https)" if scheme == "https" else "", code))
            return {"status": int(code)}
        if code.startswith("4"):   # a client error (e.g. no such route) will not change by waiting
            log("body: " + body)
            raise AgentError("GET %s through nginx answered HTTP %s (a client error): set flask-deploy:healthPath to a route "
                             "of the app that answers 2xx\n(no such route?)" % (path, code))
        if clock() >= deadline:
            break
        sleep(0.5)
    log("health check through nginx failed: HTTP %s; body: %s" % (code, body))
    log("--- last lines of the app's journal ---")
    unit = "fdeploy-%s@*" % app
    log(journal(host, unit, 30).rstrip("\n"))
    error = app_error(host, unit)
    if error:
        log(error)
    raise AgentError("GET %s through nginx did not answer 2xx within %ss (flask-deploy:healthTimeoutSeconds); "
                     "the app's journal lines are above" % (path, timeout))
