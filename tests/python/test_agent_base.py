"""The base system's decisions (base.py, base.sh's create) without a server: which accounts are
created, adopted or refused (a name that belongs to someone else changes nothing), which packages
are missing, and the settings file bash sources."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import base, cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

PARAMS = {"APP": "shop", "APP_ROOT": "/srv/shop", "APP_USER": "shop", "STACK": "prod", "PACKAGES": "python3 nginx acl"}
BUILD = base.build_user("shop")


def make_host(tmp_path, users, installed=("python3",)):
    def run(argv, merge_output=False):
        assert argv[:3] == ["dpkg-query", "-W", "-f=${Status}"], argv
        ok = argv[3] in installed
        return subprocess.CompletedProcess(argv, 0 if ok else 1, "install ok installed" if ok else "", "")
    return Host(root=str(tmp_path), run=run, passwd=users.get)


@pytest.fixture
def root(tmp_path):
    return app_root(tmp_path)


def agent(host, verb, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def test_new_server_creates_every_account_app_user_first(root):
    rc, r, err = agent(make_host(root, {}), "base-plan", PARAMS)
    assert rc == 0, err
    assert r["create"] == ["shop:/srv/shop::flask-deploy app shop", "shop_1:/srv/shop:shop:flask-deploy slot shop",
                           "shop_2:/srv/shop:shop:flask-deploy slot shop", BUILD + ":/nonexistent::flask-deploy build shop"]
    assert r["adopt"] == [] and r["missing"] == ["nginx", "acl"] and r["slotUsers"] == ["shop_1", "shop_2"]
    assert BUILD == "fdbuild-" + __import__("hashlib").sha256(b"shop").hexdigest()[:10], "the name lib.sh build_user gives"


def test_a_rerun_changes_nothing(root):
    users = {"shop": (990, "flask-deploy app shop", "/srv/shop"), "shop_1": (991, "flask-deploy slot shop", "/srv/shop"),
             "shop_2": (992, "flask-deploy slot shop", "/srv/shop"), BUILD: (993, "flask-deploy build shop", "/nonexistent")}
    rc, r, _ = agent(make_host(root, users, installed=("python3", "nginx", "acl")), "base-plan", PARAMS)
    assert rc == 0 and r["create"] == [] and r["adopt"] == [] and r["missing"] == []


def test_an_app_user_of_an_earlier_version_is_adopted(root):
    # /etc/fdeploy/shop.conf (helpers.app_root) names the app user: base.sh made it, unmarked
    rc, r, _ = agent(make_host(root, {"shop": (990, "", "/srv/shop")}), "base-plan", PARAMS)
    assert rc == 0 and r["adopt"] == ["shop:/srv/shop::flask-deploy app shop"]


@pytest.mark.parametrize("users, says", [
    ({"shop": (0, "flask-deploy app shop", "/root")}, "account 'shop' is root"),
    ({"shop": (1000, "Shop Owner", "/home/shop")}, "account 'shop' exists and was not created by flask-deploy for 'shop'"),
    ({"shop_2": (1001, "flask-deploy slot other", "/srv/other")}, "account 'shop_2' exists"),
    ({BUILD: (1001, "someone", "/home/x")}, "account '%s' exists" % BUILD),
])
def test_a_name_that_belongs_to_someone_else_is_refused_naming_the_setting(tmp_path, users, says):
    root = app_root(tmp_path)
    (root / "etc/fdeploy/shop.conf").unlink()   # no earlier deploy of this app
    rc, r, err = agent(make_host(root, users), "base-plan", PARAMS)
    assert rc == 1 and says in r["error"] and err.startswith("error: ")
    assert "root" in says or "choose another appName" in r["error"]


@pytest.mark.parametrize("change, says", [
    ({"APP_USER": "Shop"}, "flask-deploy:appName"),
    ({"APP_ROOT": "/srv/../etc"}, "bad app root"),
    ({"PACKAGES": "nginx curl;id"}, "bad package name 'curl;id'"),
    ({"STACK": "prod stack"}, "bad stack name"),
])
def test_bad_input_is_refused(root, change, says):
    rc, r, _ = agent(make_host(root, {}), "base-plan", dict(PARAMS, **change))
    assert rc == 1 and says in r["error"]


def test_settings_file_bash_sources_and_the_stack_kept(root):
    host = make_host(root, {})
    conf = root / "etc/fdeploy/shop.conf"
    assert agent(host, "base-settings", PARAMS)[1]["changed"]
    assert conf.read_text() == "APP_ROOT=/srv/shop\nAPP_USER=shop\nSTACK=prod\n"
    assert not agent(host, "base-settings", PARAMS)[1]["changed"], "a re-run changes nothing"
    params = dict(PARAMS)
    del params["STACK"]
    agent(host, "base-settings", params)
    assert conf.read_text().endswith("STACK=prod\n"), "a caller that does not say keeps the stack"
    out = subprocess.run(["bash", "-c", '. "$1"; printf "%s|%s|%s" "$APP_ROOT" "$APP_USER" "$STACK"', "-", str(conf)],
                         capture_output=True, text=True, check=True).stdout
    assert out == "/srv/shop|shop|prod"
