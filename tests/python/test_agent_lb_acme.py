"""tls.mode acme at the balancer (lb_acme.py, haproxy_config.py): HTTP-01 through HAProxy to certbot's standalone
server on a loopback port, the issued chain and key as the app's root-only PEM, a re-run that issues nothing, a
refusal that puts the balancer back, the renewal hook (the real sh script, its paths moved under a temporary root).
certbot "issues" by leaving the files it would leave (test_agent_tls.issued); openssl is the real one."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import haproxy, haproxy_config, lb_acme  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from test_agent_haproxy import FRAG, Box  # noqa: E402
from test_agent_tls import LIVE, issued  # noqa: E402

quiet = lambda s: None  # noqa: E731
PEBBLE = "https://10.213.0.1:14230/dir"
ACME = dict(FRAG, SERVER_NAME="shop.test www.shop.test", TLS_MODE="acme", ACME_SERVER=PEBBLE, EMAIL="ops@shop.test",
            CA_BUNDLE="", TLS_HSTS="300")
ROUTE = ("    use_backend fdeploy_acme if !{ ssl_fc } { path_beg /.well-known/acme-challenge/ } "
         "{ req.hdr(host),field(1,:) -i shop.test www.shop.test }\n")


class AcmeBox(Box):
    """Box with the real openssl and a certbot that issues (or fails with FAILS); what haproxy.cfg was while it ran."""

    def __init__(self, tmp_path):
        Box.__init__(self, tmp_path)
        self.fails, self.during = "", []
        for d in ("etc/letsencrypt/renewal", LIVE, "etc/systemd/system"):
            (tmp_path / d).mkdir(parents=True)

    def run(self, argv, merge_output=False, input=None):
        if argv[0] == "openssl":
            return subprocess.run(argv, capture_output=True, text=True)
        self.ran.append(list(argv))
        if "certbot" in argv and "certonly" in argv:
            self.during.append((self.root / "etc/haproxy/haproxy.cfg").read_text())
            if self.fails:
                return subprocess.CompletedProcess(argv, 1, self.fails, "")
            issued(self.root, ["shop.test", "www.shop.test"], server=argv[argv.index("--server") + 1],
                   authenticator="standalone" if "--standalone" in argv else "webroot")
        if argv[:2] == ["certbot", "delete"]:
            (self.root / "etc/letsencrypt/renewal/fdeploy-shop.conf").unlink()
        if argv[0] == "haproxy":
            return subprocess.CompletedProcess(argv, self.check, "", "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def certbot(self):
        return [a for a in self.ran if "certbot" in a and "certonly" in a]


def pem(tmp_path):
    live = tmp_path / LIVE
    return (live / "fullchain.pem").read_bytes() + (live / "privkey.pem").read_bytes()


def test_render_sends_the_names_challenges_on_port_80_to_certbot_before_any_routing():
    other = dict(FRAG, APP="blog", SERVER_NAME="blog.example")
    cfg = haproxy_config.render([dict(FRAG, SERVER_NAME="shop.test www.shop.test", ACME=True, TLS={"HSTS": 0}), other])
    front = cfg.split("\nfrontend fdeploy\n")[1].split("\n\n")[0]
    assert ROUTE in front + "\n" and front.index("fdeploy_acme") < front.index("use_backend app_")
    assert cfg.endswith("\nbackend fdeploy_acme\n    server certbot 127.0.0.1:8402\n")   # no check: certbot listens while it validates
    # without ACME: none of it (existing balancers render the same bytes)
    assert "acme" not in haproxy_config.render([dict(FRAG, TLS={"HSTS": 0}), other])
    with pytest.raises(AgentError, match="flask-deploy:serverName"):
        haproxy_config.render([dict(FRAG, ACME=True)])   # '_' names nothing a CA could validate


def test_first_issuance_through_haproxy_then_https_with_the_issued_chain(tmp_path):
    b = AcmeBox(tmp_path)
    assert haproxy.lb_configure(b.host, dict(ACME), quiet, 0) == {"changed": True}
    [argv] = b.certbot()
    assert argv[:2] == ["env", "FDEPLOY_LB_CONFIGURE=1"]   # the renewal hook leaves the PEM to lb-configure
    i = argv.index("--standalone")
    assert argv[i:i + 5] == ["--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", "8402"]
    assert "--webroot" not in argv and argv[argv.index("--server") + 1] == PEBBLE and "ops@shop.test" in argv
    # while certbot validated: the challenge route in force, HTTP served, no HTTPS yet (no certificate to serve)
    [during] = b.during
    assert ROUTE in during and ":443" not in during and "redirect scheme https" not in during
    cfg = (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    assert ROUTE in cfg and "bind :443 ssl crt /etc/fdeploy/haproxy/certs" in cfg and 'max-age=300' in cfg
    out = tmp_path / "etc/fdeploy/haproxy/certs/shop.pem"
    assert out.read_bytes() == pem(tmp_path) and oct(out.stat().st_mode & 0o777) == "0o600"
    assert json.loads((tmp_path / "etc/fdeploy/haproxy/shop.json").read_text())["ACME"] is True
    hook = tmp_path / "etc/letsencrypt/renewal-hooks/deploy/fdeploy-haproxy-pem"
    assert hook.read_bytes() == lb_acme.HOOK_TEXT and oct(hook.stat().st_mode & 0o777) == "0o755"
    assert ["systemctl", "enable", "--now", "--quiet", "certbot.timer"] in b.ran
    assert not (tmp_path / "etc/letsencrypt/renewal-hooks/deploy/fdeploy-nginx-reload").exists()   # no nginx here


def test_a_rerun_issues_nothing_and_changes_nothing(tmp_path):
    b = AcmeBox(tmp_path)
    haproxy.lb_configure(b.host, dict(ACME), quiet, 0)
    b.ran.clear()
    assert haproxy.lb_configure(b.host, dict(ACME), quiet, 0) == {"changed": False}
    assert b.certbot() == [] and not [a for a in b.ran if "reload-or-restart" in a]
    # a name added: issued again (HTTPS with the current certificate meanwhile)
    haproxy.lb_configure(b.host, dict(ACME, SERVER_NAME="shop.test www.shop.test api.shop.test"), quiet, 0)
    assert "-d" in b.certbot()[0] and "api.shop.test" in b.certbot()[0] and ":443" in b.during[-1]


def test_a_certificate_validated_another_way_is_issued_again(tmp_path):
    """A lineage left by a single server's webroot (this host's past): certbot's renewals would fail here."""
    b = AcmeBox(tmp_path)
    issued(tmp_path, ["shop.test", "www.shop.test"], server=PEBBLE, authenticator="webroot")
    haproxy.lb_configure(b.host, dict(ACME), quiet, 0)
    assert "--force-renewal" in b.certbot()[0]


def test_certbot_refusing_puts_the_balancer_back_and_names_the_name(tmp_path):
    b = AcmeBox(tmp_path)
    b.fails = "  Domain: www.shop.test\n  Type:   dns\n  Detail: no valid A records found for www.shop.test\n"
    with pytest.raises(AgentError, match=r"no certificate for shop\.test www\.shop\.test from .*www\.shop\.test \(no valid A.*\(HTTP\)"):
        haproxy.lb_configure(b.host, dict(ACME), quiet, 0)
    assert not (tmp_path / "etc/fdeploy/haproxy/shop.json").exists() and ["systemctl", "disable", "--now", "haproxy"] in b.ran
    # with a certificate in force: it stays, and the balancer as it was
    b.fails = ""
    haproxy.lb_configure(b.host, dict(ACME), quiet, 0)
    before, cfg = pem(tmp_path), (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    b.fails = "  Domain: api.shop.test\n  Detail: DNS problem: NXDOMAIN looking up A for api.shop.test\n"
    with pytest.raises(AgentError, match=r"api\.shop\.test \(DNS problem.*with the previous certificate \(shop\.test www\.shop\.test\)"):
        haproxy.lb_configure(b.host, dict(ACME, SERVER_NAME="shop.test www.shop.test api.shop.test"), quiet, 0)
    assert (tmp_path / "etc/fdeploy/haproxy/certs/shop.pem").read_bytes() == before
    assert (tmp_path / "etc/haproxy/haproxy.cfg").read_text() == cfg


@pytest.mark.parametrize("change,setting", [
    ({"SERVER_NAME": "_"}, "flask-deploy:serverName"),
    ({"EMAIL": "ops at shop"}, "flask-deploy:tls.email"),
    ({"ACME_SERVER": "http://acme.test/dir"}, "flask-deploy:tls.acmeServer"),
    ({"TLS_MODE": "acme-v1"}, "flask-deploy:tls.mode"),
])
def test_bad_input_is_refused_before_anything_changes(tmp_path, change, setting):
    b = AcmeBox(tmp_path)
    with pytest.raises(AgentError, match=setting):
        haproxy.lb_configure(b.host, dict(ACME, **change), quiet, 0)
    assert not (tmp_path / "etc/fdeploy").exists() and b.ran == []


def test_leaving_acme_or_the_balancer_removes_the_certificate_and_its_renewal(tmp_path):
    b = AcmeBox(tmp_path)
    haproxy.lb_configure(b.host, dict(ACME, CA_BUNDLE="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----"), quiet, 0)
    assert (tmp_path / "etc/fdeploy/shop/acme-ca.pem").exists()
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0)   # tls.mode off
    assert ["certbot", "delete", "--non-interactive", "--cert-name", "fdeploy-shop"] in b.ran
    assert not (tmp_path / "etc/fdeploy/shop").exists() and not (tmp_path / "etc/fdeploy/haproxy/certs/shop.pem").exists()
    b.ran.clear()
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0)   # nothing left to remove: certbot is not asked
    assert not [a for a in b.ran if "certbot" in a]
    haproxy.lb_configure(b.host, dict(ACME), quiet, 0)
    b.ran.clear()
    haproxy.lb_delete(b.host, {"APP": "shop"}, quiet, 0)
    assert ["certbot", "delete", "--non-interactive", "--cert-name", "fdeploy-shop"] in b.ran


# The renewal hook: the real script, its absolute paths under a temporary root; haproxy and systemctl recorded.

def hook(tmp_path, app_json, env=None):
    root = tmp_path / "root"
    text = lb_acme.HOOK_TEXT.decode().replace("/etc/", str(root) + "/etc/")
    script = tmp_path / "hook"
    script.write_text(text)
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    for cmd in ("haproxy", "systemctl"):
        (bin_ / cmd).write_text("#!/bin/sh\necho %s \"$@\" >>%s/called\n" % (cmd, tmp_path))
        (bin_ / cmd).chmod(0o755)
    lineage = root / "etc/letsencrypt/live/fdeploy-shop"
    lineage.mkdir(parents=True, exist_ok=True)
    (lineage / "fullchain.pem").write_text("CHAIN\n")
    (lineage / "privkey.pem").write_text("KEY\n")
    (root / "etc/fdeploy/haproxy/certs").mkdir(parents=True, exist_ok=True)
    (root / "etc/fdeploy/haproxy/shop.json").write_text(json.dumps(app_json, sort_keys=True))
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=dict(
        {"PATH": "%s:/usr/bin:/bin" % bin_, "RENEWED_LINEAGE": str(lineage)}, **(env or {})))
    called = (tmp_path / "called").read_text() if (tmp_path / "called").exists() else ""
    out = root / "etc/fdeploy/haproxy/certs/shop.pem"
    return r, called, out


def test_the_renewal_hook_rebuilds_the_pem_and_reloads_after_haproxy_accepts(tmp_path):
    r, called, out = hook(tmp_path, dict(FRAG, ACME=True, TLS={"HSTS": 0}))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "CHAIN\nKEY\n" and oct(out.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in out.parent.iterdir()) == ["shop.pem"]   # HAProxy loads every file there
    assert called.splitlines() == ["haproxy -c -q -f %s/root/etc/haproxy/haproxy.cfg" % tmp_path, "systemctl reload haproxy"]


@pytest.mark.parametrize("frag,env", [(dict(FRAG, TLS={"HSTS": 0}), {}), (dict(FRAG, ACME=True), {"FDEPLOY_LB_CONFIGURE": "1"})])
def test_the_renewal_hook_leaves_other_certificates_and_lb_configures_own(tmp_path, frag, env):
    r, called, out = hook(tmp_path, frag, env)
    assert r.returncode == 0 and called == "" and not out.exists()
