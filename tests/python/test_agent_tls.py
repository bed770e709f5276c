"""The agent's TLS and nginx site steps (tls.py, site.py) without a server: a temporary folder
stands for /, certificates are real ones made by openssl; nginx -t, systemctl, apt and certbot are
stood in for at the Host seam (certbot "issues" by leaving the files it would leave). What a user relies
on: a certificate is issued only when the names or the ACME directory changed or it expired (a
re-run issues nothing), certbot gets the wanted directory (staging or production), bad settings are
refused naming them before anything changes, the site in force before a failure is put back."""
import io
import json
import os
import stat
import subprocess
import sys
import time
from unittest import mock

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, tls  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

PROD = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
LIVE = "etc/letsencrypt/live/fdeploy-shop"
SITE = "server { listen 443 ssl; ssl_certificate /etc/letsencrypt/live/fdeploy-shop/fullchain.pem; }"
ISSUING = "server { listen 80; location /.well-known/acme-challenge/ { root /var/lib/fdeploy-acme/shop; } }"
CREATE = {"APP": "shop", "CERT_NAME": "fdeploy-shop", "DOMAINS": "www.shop.test shop.test", "ACME_SERVER": PROD,
          "EMAIL": "admin@shop.test", "CA_BUNDLE": "", "WEBROOT": "/var/lib/fdeploy-acme/shop", "SITE": SITE,
          "SITE_ISSUING": ISSUING}


class Server:
    """What the stand-ins answer: nginx -t passes unless NGINX_BAD is in the site in force (or BROKEN:
    another file of nginx's is); certbot succeeds (leaving CERTBOT_NAMES' certificate) unless
    CERTBOT_FAILS is set; certbot is installed when INSTALLED."""

    def __init__(self, root):
        self.root, self.broken, self.certbot_fails, self.installed = root, False, "", True
        self.certbot_names = ["www.shop.test", "shop.test"]

    def run(self, argv, merge_output=False, input=None):
        ok = subprocess.CompletedProcess(argv, 0, "", "")
        if argv[0] == "openssl":   # the real one, on files under the temporary root
            return subprocess.run(argv, capture_output=True, text=True, check=False)
        if argv[:2] == ["nginx", "-t"]:
            site = self.root / "etc/nginx/sites-available/fdeploy-shop.conf"
            bad = self.broken or (site.exists() and "NGINX_BAD" in site.read_text())
            return subprocess.CompletedProcess(argv, 1 if bad else 0, "nginx: [emerg] bad" if bad else "syntax is ok", "")
        if argv[0] == "install":
            (self.root / argv[-1].lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (self.root / argv[-1].lstrip("/")).write_text("")
        if argv[0] == "flock":
            self.installed = True
        if "certbot" in argv and "certonly" in argv:
            if self.certbot_fails:
                return subprocess.CompletedProcess(argv, 1, self.certbot_fails, "")
            issued(self.root, self.certbot_names, server=argv[argv.index("--server") + 1],
                   authenticator="standalone" if "--standalone" in argv else "webroot")
        return ok


@pytest.fixture
def server(tmp_path):
    app_root(tmp_path, "etc/nginx/sites-available", "etc/nginx/sites-enabled", "etc/letsencrypt/renewal", LIVE, "run", "var/lib",
             "var/log/nginx")
    return Server(tmp_path)


@pytest.fixture
def host(tmp_path, server):
    return Host(root=str(tmp_path), run=server.run, user_ids=lambda name: (1001, 1001),
                which=lambda c: "/usr/bin/certbot" if c != "certbot" or server.installed else None)


# steps of tls-create, each on its own (their decisions)
INTERNAL = {"tls-plan": tls.tls_plan, "tls-trust": tls.tls_trust, "tls-issued": tls.tls_issued, "tls-forget": tls.tls_forget}


def agent(host, verb, params):
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(cli.VERBS, INTERNAL):
        rc = cli.main([verb], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def result(host, verb, params):
    rc, res, err = agent(host, verb, params)
    assert rc == 0, err
    return res


def make_cert(folder, names, days=30):
    """A real certificate for NAMES in FOLDER (cert.pem, fullchain.pem, privkey.pem)."""
    folder.mkdir(parents=True, exist_ok=True)
    san = ",".join("DNS:" + n for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(folder / "privkey.pem"), "-out", str(folder / "cert.pem"), "-days", str(days),
                    "-subj", "/CN=" + names[0], "-addext", "subjectAltName=" + san], check=True, capture_output=True)
    (folder / "fullchain.pem").write_bytes((folder / "cert.pem").read_bytes())


def issued(tmp_path, names, server=PROD, days=30, authenticator="webroot"):
    """What certbot leaves after issuing: the files in archive/, links to them in live/, and the
    renewal config."""
    archive = tmp_path / "etc/letsencrypt/archive/fdeploy-shop"
    make_cert(archive, names, days)
    for f in ("cert", "fullchain", "privkey"):
        (archive / (f + ".pem")).rename(archive / (f + "1.pem"))
        link = tmp_path / LIVE / (f + ".pem")
        if os.path.lexists(link):
            link.unlink()
        os.symlink("../../archive/fdeploy-shop/%s1.pem" % f, link)
    (tmp_path / "etc/letsencrypt/renewal/fdeploy-shop.conf").write_text("version = 2.1.0\n[renewalparams]\nauthenticator = %s\nserver = %s\n" % (authenticator, server))


# ---- which certificate: keep, issue, force -------------------------------------------------

def test_no_certificate_yet_issues_with_the_http_site_in_force(host, tmp_path):
    r = result(host, "tls-plan", CREATE)
    assert r["action"] == "issue" and not r["force"] and r["issuing"] == "http" and r["changed"]
    assert (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text() == ISSUING + "\n"
    assert os.readlink(tmp_path / "etc/nginx/sites-enabled/fdeploy-shop.conf") == "/etc/nginx/sites-available/fdeploy-shop.conf"
    args = r["certbot"]
    assert args[:2] == ["certonly", "--non-interactive"] and "--force-renewal" not in args
    assert args[args.index("--server") + 1] == PROD and args[args.index("--email") + 1] == "admin@shop.test"
    assert [args[i + 1] for i, a in enumerate(args) if a == "-d"] == ["shop.test", "www.shop.test"]
    assert not (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists(), "kept only once issued"


def test_same_names_same_directory_still_valid_is_kept_and_nothing_changes(host, tmp_path):
    issued(tmp_path, ["www.shop.test", "shop.test"])
    (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").write_text(SITE + "\n")
    r = result(host, "tls-plan", CREATE)
    assert r["action"] == "keep" and r["want"] == "shop.test www.shop.test" and r["notAfter"].endswith("GMT")
    assert "certbot" not in r
    assert not (tmp_path / "etc/fdeploy/shop/site.saved.json").exists()
    desired = tmp_path / "etc/fdeploy/shop/tls.desired.json"
    assert json.loads(desired.read_text()) == CREATE and stat.S_IMODE(desired.stat().st_mode) == 0o600


def test_domains_changed_issue_a_new_certificate_while_https_keeps_serving(host, tmp_path):
    issued(tmp_path, ["shop.test"])
    r = result(host, "tls-plan", CREATE)
    assert r["action"] == "issue" and r["have"] == "shop.test" and r["want"] == "shop.test www.shop.test"
    assert not r["force"], "new names: certbot issues without being forced"
    assert r["issuing"] == "https"
    assert (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text() == SITE + "\n"


def test_staging_to_production_forces_a_new_certificate_from_production(host, tmp_path):
    issued(tmp_path, ["www.shop.test", "shop.test"], server=STAGING)
    r = result(host, "tls-plan", CREATE)
    assert r["action"] == "issue" and r["force"], "same names from another directory: certbot would keep it unless forced"
    assert r["certbot"][r["certbot"].index("--server") + 1] == PROD and "--force-renewal" in r["certbot"]
    staging = result(host, "tls-plan", dict(CREATE, ACME_SERVER=STAGING))
    assert staging["action"] == "keep"


def test_a_certificate_a_balancer_validated_is_issued_again_through_the_webroot(host, tmp_path):
    """A lineage certbot renews with its standalone server (this host was a fleet's balancer: lb_acme.py) would
    fail its renewals behind nginx: issued again (forced), the webroot's way."""
    issued(tmp_path, ["www.shop.test", "shop.test"], authenticator="standalone")
    r = result(host, "tls-plan", CREATE)
    assert r["action"] == "issue" and r["force"] and "--webroot" in r["certbot"] and "--standalone" not in r["certbot"]


def test_expired_certificate_is_issued_again_forced(host, tmp_path):
    issued(tmp_path, ["www.shop.test", "shop.test"], days=1)
    req = tls.check(CREATE)
    assert tls.plan(host, req, SITE, ISSUING)["action"] == "keep"
    later = tls.plan(host, req, SITE, ISSUING, now=time.time() + 3 * 86400)
    assert later["action"] == "issue" and later["force"]


def test_without_email_registers_without_one_and_private_ca_is_passed(host, tmp_path):
    r = result(host, "tls-plan", dict(CREATE, EMAIL=""))
    assert "--register-unsafely-without-email" in r["certbot"] and "--email" not in r["certbot"] and r["caBundle"] == ""


def test_from_custom_mode_https_stays_on_with_your_own_certificate(host, tmp_path):
    make_cert(tmp_path / "etc/fdeploy/shop/tls", ["shop.test"])
    r = result(host, "tls-plan", CREATE)
    assert r["issuing"] == "custom"
    site = (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text()
    assert "ssl_certificate /etc/fdeploy/shop/tls/fullchain.pem;" in site


# ---- bad settings: refused, naming the setting, before anything changes ----------------------

@pytest.mark.parametrize("change, setting", [
    ({"DOMAINS": "shop.test bad_name.test"}, "flask-deploy:serverName"),
    ({"DOMAINS": "localhost"}, "flask-deploy:serverName"),
    ({"DOMAINS": "  "}, "flask-deploy:serverName"),
    ({"EMAIL": "admin at shop"}, "flask-deploy:tls.email"),
    ({"EMAIL": "a'b@shop.test"}, "flask-deploy:tls.email"),
    ({"ACME_SERVER": "http://acme.test/dir"}, "flask-deploy:tls.acmeServer"),
    ({"ACME_SERVER": "https://acme.test/dir?x=$(id)"}, "flask-deploy:tls.acmeServer"),
    ({"APP": "Shop"}, "flask-deploy:appName"),
    ({"CERT_NAME": "fdeploy-other"}, "fdeploy-shop"),
    ({"WEBROOT": "/tmp"}, "/var/lib/fdeploy-acme/shop"),
])
def test_bad_input_is_refused_before_anything_changes(host, tmp_path, change, setting):
    for verb in ("tls-create", "tls-plan"):
        rc, res, err = agent(host, verb, dict(CREATE, **change))
        assert rc == 1 and setting in res["error"] and err.startswith("error: ")
    assert not list((tmp_path / "etc/nginx/sites-available").iterdir())
    assert not (tmp_path / "etc/fdeploy/shop").exists()


def test_no_base_system_yet(host, tmp_path):
    (tmp_path / "etc/fdeploy/shop.conf").unlink()
    rc, res, _ = agent(host, "tls-create", CREATE)
    assert rc == 1 and "no base system" in res["error"] and host.commands == []


# ---- a failed issuance: the site before back, an error naming each refused name ----------------

CERTBOT_OUT = """Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for shop.test and nx.shop.test

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: nx.shop.test
  Type:   dns
  Detail: DNS problem: NXDOMAIN looking up A for nx.shop.test - check that a DNS record exists for this domain

Hint: The Certificate Authority failed to download the temporary challenge files.
Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""


def enable(tmp_path, text):
    """TEXT is the app's site in force."""
    (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").write_text(text)
    os.symlink("/etc/nginx/sites-available/fdeploy-shop.conf", tmp_path / "etc/nginx/sites-enabled/fdeploy-shop.conf")


def site_text(tmp_path):
    return (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text()


def ran(host, *words):
    """The commands that ran which start with WORDS."""
    return [c for c in host.commands if c[:len(words)] == list(words)]


def test_failure_puts_the_previous_site_back_and_names_the_refused_name(host, tmp_path, server):
    issued(tmp_path, ["shop.test"])
    enable(tmp_path, "the site before\n")
    server.certbot_fails = CERTBOT_OUT
    rc, res, err = agent(host, "tls-create", dict(CREATE, DOMAINS="shop.test nx.shop.test"))
    assert rc == 1
    assert "no certificate for nx.shop.test shop.test from %s: nx.shop.test (DNS problem: NXDOMAIN" % PROD in res["error"]
    assert res["error"].endswith("stays in force with the previous certificate (shop.test).")
    assert "  Domain: nx.shop.test" in err
    assert site_text(tmp_path) == "the site before\n"
    assert not (tmp_path / "etc/fdeploy/shop/site.saved.json").exists()
    assert not (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists(), "a failed create is not kept"
    # the HTTPS site (names added) was tested and loaded for the validation, then the one before
    assert len(ran(host, "nginx", "-t")) == 2 and len(ran(host, "systemctl", "reload", "nginx")) == 2


def test_first_issuance_fails_no_site_is_left(host, tmp_path, server):
    server.certbot_fails = "An unexpected error occurred:\nConnection refused\n"
    rc, res, err = agent(host, "tls-create", CREATE)
    assert rc == 1 and "certbot failed, see above" in res["error"] and res["error"].endswith("stays in force (HTTP).")
    assert "An unexpected error occurred" in err
    assert not (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").exists()
    assert not os.path.lexists(tmp_path / "etc/nginx/sites-enabled/fdeploy-shop.conf")


def test_previous_site_names_a_deleted_certificate_the_http_site_serves(host, tmp_path, server):
    enable(tmp_path, "NGINX_BAD: names /etc/letsencrypt/live/fdeploy-shop/fullchain.pem, deleted by hand\n")
    server.certbot_fails = "Some challenges have failed.\n"
    rc, res, err = agent(host, "tls-create", CREATE)
    assert rc == 1 and "the previous site's certificate files are missing; the HTTP site stays in force" in err
    assert site_text(tmp_path) == ISSUING + "\n"


def test_first_issuance_http_site_then_https_site_in_force(host, tmp_path, server):
    server.installed = False
    r = result(host, "tls-create", CREATE)
    assert r["action"] == "issue" and r["notAfter"].endswith("GMT")
    apt = ran(host, "flock")
    assert apt and apt[0][:4] == ["flock", "-w", "900", "/var/lib/apt/lists"] and apt[0][-1] == "certbot"
    assert (tmp_path / "var/lib/fdeploy-acme/shop").is_dir()
    hook = tmp_path / tls.HOOK.lstrip("/")
    assert "nginx -t -q && systemctl reload nginx" in hook.read_text() and stat.S_IMODE(hook.stat().st_mode) == 0o755
    assert ran(host, "systemctl", "enable", "--now", "--quiet", "certbot.timer")
    certbot = ran(host, "certbot")[0]
    assert certbot[certbot.index("--server") + 1] == PROD and "--force-renewal" not in certbot
    # the HTTP site was loaded before certbot ran, the HTTPS one after it
    order = [c[0] if c[0] != "systemctl" else " ".join(c[:2]) for c in host.commands if c[0] in ("certbot", "nginx", "systemctl")]
    assert order.index("certbot") > order.index("nginx") and "nginx" in order[order.index("certbot"):]
    assert site_text(tmp_path) == SITE + "\n"
    for log in ("access", "error", "upstream"):
        assert (tmp_path / ("var/log/nginx/fdeploy-shop.%s.log" % log)).exists()
    assert (tmp_path / "etc/fdeploy/shop/upstream.conf").read_text().endswith("server unix:/run/fdeploy-shop/live.sock;\n")
    assert json.loads((tmp_path / "etc/fdeploy/shop/tls.desired.json").read_text()) == CREATE
    assert not (tmp_path / "etc/fdeploy/shop/site.saved.json").exists()
    # a re-run: nothing issued, installed, tested or reloaded
    n = len(host.commands)
    assert result(host, "tls-create", CREATE)["action"] == "keep"
    assert [c for c in host.commands[n:] if c[0] in ("certbot", "nginx", "flock") or "reload" in c] == []


def test_https_site_nginx_rejects_is_not_left_in_force(host, tmp_path, server):
    enable(tmp_path, "the site before\n")
    server.certbot_names = ["www.shop.test", "shop.test"]
    rc, res, err = agent(host, "tls-create", dict(CREATE, SITE="NGINX_BAD " + SITE))
    assert rc == 1 and res["error"].startswith("nginx -t rejected the site for HTTPS") and "[emerg]" in err
    assert site_text(tmp_path) == "the site before\n"
    assert not (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists()


def test_issuing_site_rejected_certbot_never_runs(host, tmp_path, server):
    enable(tmp_path, "the site before\n")
    rc, res, _ = agent(host, "tls-create", dict(CREATE, SITE_ISSUING="NGINX_BAD " + ISSUING))
    assert rc == 1 and res["error"].startswith("nginx -t rejected") and not ran(host, "certbot")
    assert site_text(tmp_path) == "the site before\n"


def test_issued_puts_the_https_site_in_place_and_drops_your_own_certificate(host, tmp_path):
    result(host, "tls-plan", CREATE)
    issued(tmp_path, ["www.shop.test", "shop.test"])
    make_cert(tmp_path / "etc/fdeploy/shop/tls", ["shop.test"])
    r = result(host, "tls-issued", CREATE)
    assert r["changed"] and site_text(tmp_path) == SITE + "\n"
    assert (tmp_path / "etc/fdeploy/shop/site.saved.json").exists(), "dropped once the HTTPS site passed nginx -t"
    assert not (tmp_path / "etc/fdeploy/shop/tls").exists(), "tls.mode custom's certificate is no longer used"
    assert result(host, "tls-plan", CREATE)["action"] == "keep", "a re-run issues nothing"


# ---- tls.mode custom: your own certificate ----------------------------------------------------

def own(tmp_path, names, where="own"):
    make_cert(tmp_path / where, names)
    cert, key = ((tmp_path / where / f).read_text().strip() for f in ("fullchain.pem", "privkey.pem"))
    site = SITE.replace("/etc/letsencrypt/live/fdeploy-shop/", "/etc/fdeploy/shop/tls/")
    return {"APP": "shop", "MODE": "custom", "CERT": cert, "KEY": key, "CERT_DIR": "/etc/fdeploy/shop/tls",
            "CERT_NAME": "fdeploy-shop", "DOMAINS": "shop.test", "SITE": site}


def test_custom_certificate_in_force_and_an_acme_one_deleted(host, tmp_path, server):
    issued(tmp_path, ["shop.test"])
    params = own(tmp_path, ["shop.test"])
    r = result(host, "tls-create", params)
    assert r["action"] == "custom" and r["changed"]
    folder = tmp_path / "etc/fdeploy/shop/tls"
    assert (folder / "privkey.pem").read_text() == params["KEY"] + "\n"
    assert stat.S_IMODE((folder / "privkey.pem").stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert site_text(tmp_path) == params["SITE"] + "\n" and ran(host, "nginx", "-t")
    assert ran(host, "certbot", "delete", "--non-interactive", "--cert-name", "fdeploy-shop")
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "valid"
    n = len(host.commands)
    assert not result(host, "tls-create", params)["changed"] and not ran(host, "nginx", "-t")[len(ran(host, "nginx", "-t")):]
    assert [c for c in host.commands[n:] if c[0] == "nginx"] == [], "a re-run tests and reloads nothing"


def test_custom_key_of_another_certificate_is_refused_before_anything_changes(host, tmp_path):
    params = dict(own(tmp_path, ["shop.test"]), KEY=own(tmp_path, ["other.test"], "other")["KEY"])
    rc, res, _ = agent(host, "tls-create", params)
    assert rc == 1 and res["error"].startswith("tls.privateKey does not belong to the certificate in tls.certificate")
    assert os.listdir(tmp_path / "etc/fdeploy/shop/tls") == [] and not ran(host, "nginx")
    rc, res, _ = agent(host, "tls-create", dict(params, CERT="not a certificate"))
    assert rc == 1 and res["error"].startswith("tls.certificate is not a PEM certificate")
    assert "KEY" not in res["error"] and params["KEY"][30:60] not in res["error"]


def test_custom_certificate_nginx_rejects_puts_the_previous_one_back(host, tmp_path, server):
    first = own(tmp_path, ["shop.test"])
    result(host, "tls-create", first)
    second = own(tmp_path, ["shop.test", "www.shop.test"], "second")
    rc, res, _ = agent(host, "tls-create", dict(second, SITE="NGINX_BAD " + second["SITE"]))
    assert rc == 1 and res["error"].startswith("nginx -t rejected the site or the certificate in tls.certificate")
    assert (tmp_path / "etc/fdeploy/shop/tls/fullchain.pem").read_text() == first["CERT"] + "\n"
    assert site_text(tmp_path) == first["SITE"] + "\n"


# ---- read, repair: the last create's parameters, Python's alone -------------------------------

def test_read_reports_missing_valid_names_differ_expired(host, tmp_path):
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "missing"
    issued(tmp_path, ["www.shop.test", "shop.test"], days=1)
    (tmp_path / "etc/fdeploy/shop").mkdir(mode=0o700)
    (tmp_path / "etc/fdeploy/shop/tls.desired.json").write_text(json.dumps(CREATE))   # as tls-create wrote it
    r = result(host, "tls-read", {"APP": "shop"})
    assert r["certificate"] == "valid" and r["names"] == "shop.test www.shop.test" and r["notAfter"]
    assert tls.read_state(host, "shop", now=time.time() + 3 * 86400)["certificate"] == "expired"
    (tmp_path / "etc/fdeploy/shop/tls.desired.json").write_text(json.dumps(dict(CREATE, DOMAINS="shop.test")))
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "names-differ"


def test_read_of_your_own_certificate(host, tmp_path):
    custom = {"APP": "shop", "MODE": "custom", "CERT_DIR": "/etc/fdeploy/shop/tls", "DOMAINS": "shop.test", "SITE": SITE}
    tls.keep_desired(host, "shop", custom)
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "missing"
    make_cert(tmp_path / "etc/fdeploy/shop/tls", ["other.test"])
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "valid", "its names are checked at preview"


def test_repair_issues_again_with_the_last_parameters(host, tmp_path):
    rc, res, _ = agent(host, "tls-repair", {"APP": "shop"})
    assert rc == 1 and "TlsCertificate never ran" in res["error"]
    assert result(host, "tls-create", CREATE)["action"] == "issue"
    for f in ("cert", "fullchain", "privkey"):   # deleted by hand
        (tmp_path / LIVE / (f + ".pem")).unlink()
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "missing"
    n = len(ran(host, "certbot"))
    r = result(host, "tls-repair", {"APP": "shop"})
    assert r["certificate"] == "valid" and r["names"] == "shop.test www.shop.test" and len(ran(host, "certbot")) == n + 1
    (tmp_path / "etc/fdeploy/shop/tls.desired.json").write_text("{not json")
    rc, res, _ = agent(host, "tls-read", {"APP": "shop"})
    assert rc == 1 and "tls.desired.json is damaged" in res["error"]


# ---- certbot's trust of private ACME CAs; delete -----------------------------------------------

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


def test_private_ca_goes_to_certbot_alone_and_leaves_with_the_last_app(host, tmp_path):
    (tmp_path / "etc/ssl/certs").mkdir(parents=True)
    (tmp_path / "etc/ssl/certs/ca-certificates.crt").write_text("SYSTEM\n")
    r = result(host, "tls-trust", dict(CREATE, CA_BUNDLE=CA))
    assert r["changed"] and r["caBundle"] == "/etc/fdeploy/shop/acme-ca.pem"
    assert (tmp_path / "etc/fdeploy/acme-ca-bundle.pem").read_text() == "SYSTEM\n" + CA + "\n"
    assert "REQUESTS_CA_BUNDLE=/etc/fdeploy/acme-ca-bundle.pem" in (tmp_path / tls.DROPIN.lstrip("/")).read_text()
    assert host.commands[-1] == ["systemctl", "daemon-reload"]
    assert result(host, "tls-plan", dict(CREATE, CA_BUNDLE=CA))["caBundle"] == "/etc/fdeploy/shop/acme-ca.pem"
    n = len(host.commands)
    assert not result(host, "tls-trust", dict(CREATE, CA_BUNDLE=CA))["changed"] and len(host.commands) == n
    result(host, "tls-trust", CREATE)
    assert not (tmp_path / tls.DROPIN.lstrip("/")).exists() and not (tmp_path / "etc/fdeploy/acme-ca-bundle.pem").exists()
    rc, res, _ = agent(host, "tls-trust", dict(CREATE, CA_BUNDLE="not a pem"))
    assert rc == 1 and "flask-deploy:tls.caBundle" in res["error"]


def test_forget_keeps_a_certificate_the_site_still_uses(host, tmp_path):
    issued(tmp_path, ["shop.test"])
    result(host, "tls-plan", dict(CREATE, DOMAINS="shop.test"))
    (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").write_text(SITE + "\n")
    assert result(host, "tls-forget", {"APP": "shop"}) == {"kept": True, "certbotDelete": "", "ok": True}
    assert (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists()
    (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").write_text("server { listen 80; }\n")
    assert result(host, "tls-forget", {"APP": "shop"})["certbotDelete"] == "fdeploy-shop"
    assert not (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists()


# ---- the nginx site (site-create) --------------------------------------------------------------

def test_site_stage_keeps_desired_and_restores_the_site_before(host, tmp_path):
    site = tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf"
    assert result(host, "site-stage", {"APP": "shop", "SITE": "one"})["changed"]
    assert (tmp_path / "etc/fdeploy/shop/site.desired").read_text() == "one\n" and site.read_text() == "one\n"
    assert stat.S_IMODE((tmp_path / "etc/fdeploy/shop/site.desired").stat().st_mode) == 0o600
    assert stat.S_IMODE(site.stat().st_mode) == 0o644
    result(host, "site-saved-drop", {"APP": "shop"})
    assert not result(host, "site-stage", {"APP": "shop", "SITE": "one"})["changed"], "a re-run changes nothing"
    assert result(host, "site-stage", {"APP": "shop", "SITE": "two"})["changed"]
    assert result(host, "site-restore", {"APP": "shop"})["restored"] == "site"
    assert site.read_text() == "one\n"
    assert result(host, "site-restore", {"APP": "shop"})["restored"] == "", "nothing recorded: nothing to put back"
    rc, res, _ = agent(host, "site-stage", {"APP": "shop", "SITE": ""})
    assert rc == 1 and "SITE" in res["error"]


def test_site_create_tests_loads_and_a_rerun_changes_nothing(host, tmp_path):
    r = result(host, "site-create", {"APP": "shop", "SITE": "one"})
    assert r["changed"] and len(r["revision"]) == 16 and site_text(tmp_path) == "one\n"
    assert ran(host, "nginx", "-t") and ran(host, "systemctl", "reload", "nginx")
    assert (tmp_path / "etc/fdeploy/shop/site.desired").read_text() == "one\n"
    assert not (tmp_path / "etc/fdeploy/shop/site.saved.json").exists()
    assert [c[-1] for c in ran(host, "install")] == ["/var/log/nginx/fdeploy-shop.%s.log" % k for k in ("access", "error", "upstream")]
    n = len(host.commands)
    again = result(host, "site-create", {"APP": "shop", "SITE": "one"})
    assert not again["changed"] and again["revision"] == r["revision"]
    assert [c for c in host.commands[n:] if c[0] in ("nginx", "systemctl", "install")] == []


def test_site_create_nginx_rejects_the_new_site_the_previous_stays(host, tmp_path):
    result(host, "site-create", {"APP": "shop", "SITE": "one"})
    rc, res, err = agent(host, "site-create", {"APP": "shop", "SITE": "NGINX_BAD two"})
    assert rc == 1 and res["error"].startswith("nginx rejected the new site config (nginx -t above)") and "[emerg]" in err
    assert site_text(tmp_path) == "one\n" and not (tmp_path / "etc/fdeploy/shop/site.saved.json").exists()
    assert len(ran(host, "systemctl", "reload", "nginx")) == 1, "nothing new loaded"


def test_site_create_another_file_of_nginx_at_fault_is_named(host, tmp_path, server):
    result(host, "site-create", {"APP": "shop", "SITE": "one"})
    server.broken = True
    rc, res, _ = agent(host, "site-create", {"APP": "shop", "SITE": "two"})
    assert rc == 1 and res["error"].startswith("nginx's configuration is invalid apart from this site") and site_text(tmp_path) == "one\n"
    first = tmp_path / "etc/fdeploy/other.conf"   # no base system: refused before anything changes
    rc, res, _ = agent(host, "site-create", {"APP": "other", "SITE": "x"})
    assert rc == 1 and "no base system" in res["error"] and not first.exists()


def test_site_delete_and_tls_delete(host, tmp_path):
    result(host, "tls-create", CREATE)
    (tmp_path / "etc/fdeploy/shop/maintenance.conf").write_text("x")
    r = result(host, "tls-delete", {"APP": "shop"})
    assert r["kept"] and not ran(host, "certbot", "delete"), "the site still uses the certificate"
    result(host, "site-delete", {"APP": "shop"})
    for p in ("etc/nginx/sites-available/fdeploy-shop.conf", "etc/nginx/sites-enabled/fdeploy-shop.conf",
              "etc/fdeploy/shop/maintenance.conf", "etc/fdeploy/shop/upstream.conf"):
        assert not os.path.lexists(tmp_path / p), p
    assert not result(host, "tls-delete", {"APP": "shop"})["kept"]
    assert ran(host, "certbot", "delete", "--non-interactive", "--cert-name", "fdeploy-shop")
    assert not (tmp_path / "var/lib/fdeploy-acme/shop").exists() and not (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists()
