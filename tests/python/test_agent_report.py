"""state-report: what the server really runs, as ServerState and `fdeploy status` see it. Drift is a
setting in force that differs from the deployed (.desired) copy, a site not enabled, a live slot
that does not run; nothing deployed yet is no drift."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

RID = "0123456789ab"


@pytest.fixture
def root(tmp_path):
    for d in ("etc/fdeploy/shop", "etc/systemd/system", "etc/nginx/sites-available", "etc/nginx/sites-enabled",
              "srv/shop/slots", "srv/shop/releases/" + RID):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    (tmp_path / "srv/shop/releases" / RID / ".fdeploy-release.json").write_text("{}")
    (tmp_path / "srv/shop/slots/blue").symlink_to(tmp_path / "srv/shop/releases" / RID)
    (tmp_path / "srv/shop/slots/live").write_text("blue\n")
    (tmp_path / "srv/shop/slots/activation.live.json").write_text(json.dumps({"RELEASE_ID": RID, "RUNTIME": "docker"}))
    for name, path in (("service", "etc/systemd/system/fdeploy-shop@.service"), ("socket", "etc/systemd/system/fdeploy-shop@.socket"),
                       ("env", "etc/fdeploy/shop/env"), ("site", "etc/nginx/sites-available/fdeploy-shop.conf")):
        (tmp_path / "etc/fdeploy/shop" / (name + ".desired")).write_text(name + " v1\n")
        (tmp_path / path).write_text(name + " v1\n")
    (tmp_path / "etc/nginx/sites-enabled/fdeploy-shop.conf").symlink_to(tmp_path / "etc/nginx/sites-available/fdeploy-shop.conf")
    return tmp_path


def report(root, active=True):
    ran = []

    def run(argv, merge_output=False):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0 if active else 3, "", "")
    out = io.StringIO()
    assert cli.main(["state-report"], stdin=io.StringIO('{"APP": "shop"}'), stdout=out, stderr=io.StringIO(),
                    host=Host(root=str(root), run=run)) == 0
    assert ran == [["systemctl", "is-active", "--quiet", "fdeploy-shop@blue.service"]]
    return json.loads(out.getvalue())


def test_a_settled_server(root):
    r = report(root)
    assert (r["release"], r["running"], r["unitInForce"], r["envInForce"], r["siteInForce"]) == (RID, True, True, True, True)
    assert (r["deployedRelease"], r["deployedRuntime"]) == (RID, "docker")


@pytest.mark.parametrize("path, field", [
    ("etc/systemd/system/fdeploy-shop@.service", "unitInForce"),
    ("etc/systemd/system/fdeploy-shop@.socket", "unitInForce"),
    ("etc/fdeploy/shop/env", "envInForce"),
    ("etc/nginx/sites-available/fdeploy-shop.conf", "siteInForce"),
])
def test_a_setting_changed_by_hand_is_drift(root, path, field):
    (root / path).write_text("edited by hand\n")
    assert report(root)[field] is False


def test_a_disabled_site_a_stopped_slot_a_deleted_release(root):
    (root / "etc/nginx/sites-enabled/fdeploy-shop.conf").unlink()
    assert report(root)["siteInForce"] is False
    assert report(root, active=False)["running"] is False
    (root / "srv/shop/releases" / RID / ".fdeploy-release.json").unlink()
    assert report(root)["release"] == ""


def test_nothing_deployed_yet_is_no_drift(root):
    for name in ("service", "socket", "env", "site"):
        (root / "etc/fdeploy/shop" / (name + ".desired")).unlink()
    (root / "etc/systemd/system/fdeploy-shop@.service").write_text("anything\n")
    r = report(root)
    assert r["unitInForce"] and r["envInForce"] and r["siteInForce"]


def canary(root, text):
    if text is not None:
        (root / "srv/shop/slots/canary.json").write_text(text)
    out = io.StringIO()
    assert cli.main(["canary-slot"], stdin=io.StringIO('{"APP": "shop"}'), stdout=out, stderr=io.StringIO(), host=Host(root=str(root))) == 0
    return json.loads(out.getvalue())["slot"]


def test_the_slot_an_interrupted_canary_left(root):
    assert canary(root, None) == ""
    assert canary(root, '{"release": "%s", "slot": "green", "step": 2}' % RID) == "green"
    assert canary(root, '{"slot": "../../etc"}') == "" and canary(root, "{broken") == ""
