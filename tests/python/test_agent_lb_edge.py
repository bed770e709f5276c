"""The balancer's edge (README "Scale out"): maintenance mode at the balancer (lb_maintenance.py) — one
page for every host, kept by every deploy, refused before anything changes when HAProxy would not load it —
and HTTPS at the balancer (lb_tls.py, haproxy_config.py)."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import haproxy, haproxy_config, lb_maintenance  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from test_agent_haproxy import FRAG, Api, Box  # noqa: E402

quiet = lambda s: None  # noqa: E731
RETURN = 'http-request return status 503 content-type "text/html; charset=utf-8" hdr Retry-After 120 file /etc/fdeploy/haproxy/shop.maintenance.html'


def test_render_answers_503_with_the_page_only_for_an_app_in_maintenance():
    blog = dict(FRAG, APP="blog", SERVER_NAME="blog.example", HOSTS=["10.0.0.3"])
    cfg = haproxy_config.render([FRAG, blog], ["shop"])
    shop_backend = cfg.split("\nbackend app_shop")[1]
    assert RETURN in shop_backend
    assert "http-request return" not in cfg.split("\nbackend app_blog")[1].split("\nbackend app_shop")[0]
    assert "http-request return" not in haproxy_config.render([FRAG, blog])


def test_on_writes_a_root_only_page_and_reloads_off_removes_it(tmp_path):
    b = Box(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0)
    b.ran.clear()
    r = lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on", "MESSAGE": "back at <5>"}, quiet, 0)
    assert r["changed"] and r["mode"] == "on"
    page = tmp_path / "etc/fdeploy/haproxy/shop.maintenance.html"
    assert "back at &lt;5&gt;" in page.read_text() and oct(page.stat().st_mode & 0o777) == "0o600"
    assert RETURN in (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    assert ["systemctl", "reload-or-restart", "haproxy"] in b.ran
    st = lb_maintenance.state(b.host, "shop")
    assert st["on"] and st["since"] and st["by"]
    # a deploy (lb-configure) keeps it; the page's file is not taken for an app's part
    assert haproxy.lb_configure(b.host, dict(FRAG), quiet, 0) == {"changed": False}
    assert [f["APP"] for f in haproxy.fragments(b.host)] == ["shop"]
    # on again: the page changes, "since" stays
    lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on", "MESSAGE": "later"}, quiet, 0)
    assert lb_maintenance.state(b.host, "shop")["since"] == st["since"] and "later" in page.read_text()
    r = lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "off"}, quiet, 0)
    assert r["changed"] and not page.exists() and lb_maintenance.state(b.host, "shop") == {"on": False}
    assert "http-request return" not in (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    assert lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "off"}, quiet, 0)["changed"] is False


def test_refused_before_anything_changes(tmp_path):
    b = Box(tmp_path)
    with pytest.raises(AgentError, match="no part on this balancer.*pulumi up"):
        lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on"}, quiet, 0)
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0)
    before = (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    with pytest.raises(AgentError, match="--html: the page is .* bytes"):
        lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on", "HTML": "x" * 20000}, quiet, 0)
    b.check = 1   # haproxy -c refuses: the page and the running config stay as they were
    with pytest.raises(AgentError, match="haproxy -c"):
        lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on"}, quiet, 0)
    assert not (tmp_path / "etc/fdeploy/haproxy/shop.maintenance.html").exists()
    assert (tmp_path / "etc/haproxy/haproxy.cfg").read_text() == before


def test_status_reports_maintenance_and_delete_removes_the_page(tmp_path):
    b = Box(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0)
    lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on"}, quiet, 0)
    st = haproxy.lb_status(b.host, {"APP": "shop"}, quiet, 0, api=Api([0]))
    assert st["servers"]["h2"]["status"] == "UP" and st["maintenance"]["on"] is True
    haproxy.lb_delete(b.host, {"APP": "shop"}, quiet, 0)
    assert not list((tmp_path / "etc/fdeploy/haproxy").iterdir())
    json.dumps(st)


# HTTPS at the balancer (lb_tls.py): the stack's own certificate, checked with the real openssl

def _cert(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3",
                    "-subj", "/CN=example.com", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return (d / "cert.pem").read_text(), (d / "key.pem").read_text()


class TlsBox(Box):
    """Box with the real openssl."""

    def run(self, argv, merge_output=False, input=None):
        if argv[0] == "openssl":
            return subprocess.run(argv, capture_output=True, text=True)
        return Box.run(self, argv, merge_output, input)


def test_render_with_tls_binds_443_redirects_http_and_sends_hsts():
    tls = dict(FRAG, TLS={"HSTS": 600})
    cfg = haproxy_config.render([tls])
    assert "    bind :443 ssl crt /etc/fdeploy/haproxy/certs alpn http/1.1\n" in cfg
    assert "    http-request redirect scheme https code 301 unless { ssl_fc }\n" in cfg
    assert 'http-response set-header Strict-Transport-Security "max-age=600" if { ssl_fc }' in cfg
    # maintenance comes after the redirect; without TLS nothing of it (existing balancers: the same bytes)
    both = haproxy_config.render([tls], ["shop"])
    assert both.index("redirect scheme https") < both.index("http-request return status 503")
    assert ":443" not in haproxy_config.render([FRAG]) and "Strict-Transport" not in haproxy_config.render([dict(FRAG, TLS={"HSTS": 0})])
    with pytest.raises(AgentError, match="tls.hstsMaxAgeSeconds"):
        haproxy_config.render([dict(FRAG, TLS={"HSTS": "600; bind"})])


def test_every_request_gets_the_balancers_own_x_forwarded_proto():
    """The hosts' nginx believes X-Forwarded-Proto from the balancer alone: HAProxy replaces a client's, with TLS
    or without (another app on the balancer may have none)."""
    for frags in ([FRAG], [dict(FRAG, TLS={"HSTS": 0})]):
        front = haproxy_config.render(frags).split("\nfrontend fdeploy\n")[1].split("\n\n")[0]
        assert "    http-request set-header X-Forwarded-Proto http\n" in front
    front = haproxy_config.render([dict(FRAG, TLS={"HSTS": 0})]).split("\nfrontend fdeploy\n")[1]
    assert front.index("X-Forwarded-Proto http\n") < front.index("set-header X-Forwarded-Proto https if { ssl_fc }")


def test_configure_with_a_certificate_keeps_it_root_only_and_reloads_when_it_changes(tmp_path):
    b = TlsBox(tmp_path)
    cert, key = _cert(tmp_path, "a")
    params = dict(FRAG, TLS_CERT=cert, TLS_KEY=key, TLS_HSTS="0")
    assert haproxy.lb_configure(b.host, params, quiet, 0) == {"changed": True}
    pem = tmp_path / "etc/fdeploy/haproxy/certs/shop.pem"
    assert pem.read_text() == cert.strip() + "\n" + key.strip() + "\n"
    assert oct(pem.stat().st_mode & 0o777) == "0o600" and oct(pem.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads((tmp_path / "etc/fdeploy/haproxy/shop.json").read_text())["TLS"] == {"HSTS": 0}   # no key in the part
    assert haproxy.lb_configure(b.host, params, quiet, 0) == {"changed": False}
    # a new certificate, the same haproxy.cfg: HAProxy must load it (a reload)
    cert2, key2 = _cert(tmp_path, "b")
    b.ran.clear()
    assert haproxy.lb_configure(b.host, dict(params, TLS_CERT=cert2, TLS_KEY=key2), quiet, 0) == {"changed": True}
    assert ["systemctl", "reload-or-restart", "haproxy"] in b.ran
    # tls off again: the certificate goes, no :443
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0)
    assert not pem.exists() and ":443" not in (tmp_path / "etc/haproxy/haproxy.cfg").read_text()


def test_a_key_of_another_certificate_is_refused_before_anything_changes(tmp_path):
    b = TlsBox(tmp_path)
    cert, _ = _cert(tmp_path, "a")
    _, other = _cert(tmp_path, "b")
    with pytest.raises(AgentError, match="tls.privateKey does not belong"):
        haproxy.lb_configure(b.host, dict(FRAG, TLS_CERT=cert, TLS_KEY=other), quiet, 0)
    with pytest.raises(AgentError, match="tls.certificate is not a PEM"):
        haproxy.lb_configure(b.host, dict(FRAG, TLS_CERT="hello", TLS_KEY=other), quiet, 0)
    assert not (tmp_path / "etc/fdeploy").exists() and not b.ran


def test_haproxy_refusing_the_certificate_puts_the_previous_back(tmp_path):
    b = TlsBox(tmp_path)
    cert, key = _cert(tmp_path, "a")
    haproxy.lb_configure(b.host, dict(FRAG, TLS_CERT=cert, TLS_KEY=key), quiet, 0)
    cert2, key2 = _cert(tmp_path, "b")
    b.check = 1
    with pytest.raises(AgentError, match="haproxy -c"):
        haproxy.lb_configure(b.host, dict(FRAG, TLS_CERT=cert2, TLS_KEY=key2), quiet, 0)
    assert (tmp_path / "etc/fdeploy/haproxy/certs/shop.pem").read_text().startswith(cert.strip())


# A rollout whose batch holds every host (a fleet of one behind the balancer) drains none: nothing would be
# left serving (bench:fleet measured 2778 failed requests of 9878 in such a deploy); the host's own switch
# keeps it serving, as on a single server.

def test_a_batch_of_every_host_is_not_drained():
    from fdeploy_agent import fleet
    from test_agent_fleet import NEW, OLD, FakeFleet
    f = FakeFleet({"10.0.0.1": OLD})
    assert fleet.rollout(["10.0.0.1"], 1, NEW, f, quiet) == {"10.0.0.1": NEW}
    assert f.events == [("prepare", "10.0.0.1"), ("switch", "10.0.0.1"), ("ready", "10.0.0.1", True), ("tidy", "10.0.0.1")]
    two = FakeFleet({"10.0.0.1": OLD, "10.0.0.2": OLD})
    fleet.rollout(["10.0.0.1", "10.0.0.2"], 1, NEW, two, quiet)
    assert ("drain", "10.0.0.1") in two.events and ("drain", "10.0.0.2") in two.events   # the other host serves meanwhile
