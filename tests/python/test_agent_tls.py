"""The agent's TLS and nginx site decisions (tls.py, site.py) without a server: a temporary folder
stands for /, certificates are real ones made by openssl, systemctl is recorded. What a user relies
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


@pytest.fixture
def host(tmp_path):
    app_root(tmp_path, "etc/nginx/sites-available", "etc/nginx/sites-enabled", "etc/letsencrypt/renewal", LIVE)

    def run(argv, merge_output=False):
        if argv[0] == "openssl":   # the real one, on files under the temporary root
            return subprocess.run(argv, capture_output=True, text=True, check=False)
        return subprocess.CompletedProcess(argv, 0, "", "")
    return Host(root=str(tmp_path), run=run, user_ids=lambda name: (1001, 1001))


def agent(host, verb, params):
    out, err = io.StringIO(), io.StringIO()
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


def issued(tmp_path, names, server=PROD, days=30):
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
    (tmp_path / "etc/letsencrypt/renewal/fdeploy-shop.conf").write_text("version = 2.1.0\n[renewalparams]\nserver = %s\n" % server)


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
    for verb in ("tls-check", "tls-plan"):
        rc, res, err = agent(host, verb, dict(CREATE, **change))
        assert rc == 1 and setting in res["error"] and err.startswith("error: ")
    assert not list((tmp_path / "etc/nginx/sites-available").iterdir())
    assert not (tmp_path / "etc/fdeploy/shop").exists()


def test_no_base_system_yet(host, tmp_path):
    (tmp_path / "etc/fdeploy/shop.conf").unlink()
    rc, res, _ = agent(host, "tls-check", CREATE)
    assert rc == 1 and "no base system" in res["error"]


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


def test_failure_puts_the_previous_site_back_and_names_the_refused_name(host, tmp_path):
    issued(tmp_path, ["shop.test"])
    (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").write_text("the site before\n")
    os.symlink("/etc/nginx/sites-available/fdeploy-shop.conf", tmp_path / "etc/nginx/sites-enabled/fdeploy-shop.conf")
    params = dict(CREATE, DOMAINS="shop.test nx.shop.test")
    result(host, "tls-plan", params)
    assert (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text() == SITE + "\n"
    (tmp_path / "etc/fdeploy/shop/certbot.out").write_text(CERTBOT_OUT)
    assert result(host, "site-restore", params)["restored"] == "site"
    assert (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text() == "the site before\n"
    r = result(host, "tls-failure", params)
    assert "no certificate for nx.shop.test shop.test from %s: nx.shop.test (DNS problem: NXDOMAIN" % PROD in r["error"]
    assert r["error"].endswith("stays in force with the previous certificate (shop.test).")
    assert "  Domain: nx.shop.test" in r["why"] and "letsencrypt.log" not in r["why"]
    assert not (tmp_path / "etc/fdeploy/shop/certbot.out").exists()
    assert not (tmp_path / "etc/fdeploy/shop/tls.desired.json").exists(), "a failed create is not kept"


def test_first_issuance_fails_the_http_site_stays(host, tmp_path):
    result(host, "tls-plan", CREATE)
    assert result(host, "site-restore", CREATE)["restored"] == "none"
    assert not (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").exists()
    assert not os.path.lexists(tmp_path / "etc/nginx/sites-enabled/fdeploy-shop.conf")
    r = result(host, "tls-failure", CREATE)
    assert "certbot failed, see above" in r["error"] and r["error"].endswith("stays in force (HTTP).")


def test_issued_puts_the_https_site_in_force_and_keeps_the_parameters(host, tmp_path):
    result(host, "tls-plan", CREATE)
    issued(tmp_path, ["www.shop.test", "shop.test"])
    make_cert(tmp_path / "etc/fdeploy/shop/tls", ["shop.test"])
    r = result(host, "tls-issued", CREATE)
    assert r["changed"] and (tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf").read_text() == SITE + "\n"
    assert not (tmp_path / "etc/fdeploy/shop/site.saved.json").exists()
    assert not (tmp_path / "etc/fdeploy/shop/tls").exists(), "tls.mode custom's certificate is no longer used"
    assert result(host, "tls-plan", CREATE)["action"] == "keep", "a re-run issues nothing"


# ---- read, repair: the last create's parameters, Python's alone -------------------------------

def test_read_reports_missing_valid_names_differ_expired(host, tmp_path):
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "missing"
    issued(tmp_path, ["www.shop.test", "shop.test"], days=1)
    (tmp_path / "etc/fdeploy/shop").mkdir(mode=0o700)
    (tmp_path / "etc/fdeploy/shop/tls.desired.json").write_text(json.dumps(CREATE))   # as tls.sh wrote it
    r = result(host, "tls-read", {"APP": "shop"})
    assert r["certificate"] == "valid" and r["names"] == "shop.test www.shop.test" and r["notAfter"]
    assert tls.read_state(host, "shop", now=time.time() + 3 * 86400)["certificate"] == "expired"
    (tmp_path / "etc/fdeploy/shop/tls.desired.json").write_text(json.dumps(dict(CREATE, DOMAINS="shop.test")))
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "names-differ"


def test_read_of_your_own_certificate(host, tmp_path):
    custom = {"APP": "shop", "MODE": "custom", "CERT_DIR": "/etc/fdeploy/shop/tls", "DOMAINS": "shop.test", "SITE": SITE}
    result(host, "tls-desired", custom)
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "missing"
    make_cert(tmp_path / "etc/fdeploy/shop/tls", ["other.test"])
    assert result(host, "tls-read", {"APP": "shop"})["certificate"] == "valid", "its names are checked at preview"


def test_repair_gets_the_last_parameters(host, tmp_path):
    rc, res, _ = agent(host, "tls-desired", {"APP": "shop"})
    assert rc == 1 and "tls.sh create never ran" in res["error"]
    issued(tmp_path, ["www.shop.test", "shop.test"])
    result(host, "tls-plan", CREATE)
    assert json.loads(result(host, "tls-desired", {"APP": "shop"})["raw"]) == CREATE
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


# ---- the nginx site (nginx.sh) ---------------------------------------------------------------

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
