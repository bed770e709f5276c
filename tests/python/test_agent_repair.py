"""state-repair: what `pulumi up --refresh` puts back. The deployed site is put back by the agent
(the one in force recorded); a deleted release is reinstalled from its upload (or refused before
anything changes); an app that is stopped, runs another release or has a unit, environment or
shared link changed by hand is activated again; nothing drifted changes nothing."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, release  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

RID = "0123456789ab"
SITE = "etc/nginx/sites-available/fdeploy-shop.conf"
ENABLED = "etc/nginx/sites-enabled/fdeploy-shop.conf"


@pytest.fixture
def root(tmp_path, monkeypatch):
    for d in ("etc/fdeploy/shop", "etc/systemd/system", "etc/nginx/sites-available", "etc/nginx/sites-enabled",
              "srv/shop/slots", "srv/shop/releases/" + RID, "home/.fdeploy/shop/uploads/" + RID):
        (tmp_path / d).mkdir(parents=True)
    monkeypatch.setattr(release, "bundle_home", lambda: str(tmp_path / "home/.fdeploy/shop"))
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    (tmp_path / "srv/shop/releases" / RID / ".fdeploy-release.json").write_text("{}")
    (tmp_path / "srv/shop/slots/blue").symlink_to(tmp_path / "srv/shop/releases" / RID)
    (tmp_path / "srv/shop/slots/live").write_text("blue\n")
    (tmp_path / "srv/shop/slots/activation.live.json").write_text(json.dumps({"APP": "shop", "RELEASE_ID": RID, "RUNTIME": "docker"}))
    for name, path in (("service", "etc/systemd/system/fdeploy-shop@.service"), ("socket", "etc/systemd/system/fdeploy-shop@.socket"),
                       ("env", "etc/fdeploy/shop/env"), ("site", SITE)):
        (tmp_path / "etc/fdeploy/shop" / (name + ".desired")).write_text(name + " v1\n")
        (tmp_path / path).write_text(name + " v1\n")
    (tmp_path / ENABLED).symlink_to("/" + SITE)
    return tmp_path


def repair(root, active=True, status=0):
    ran, err = [], io.StringIO()

    def run(argv, merge_output=False):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0 if active else 3, "", "")
    out = io.StringIO()
    assert cli.main(["state-repair"], stdin=io.StringIO('{"APP": "shop"}'), stdout=out, stderr=err, host=Host(root=str(root), run=run)) == status
    assert ran == [["systemctl", "is-active", "--quiet", "fdeploy-shop@blue.service"]]   # only asks: the glue restarts
    r = json.loads(out.getvalue())
    r["log"] = err.getvalue()
    return r


def plan(r):
    return r["site"], r["install"], r["activate"]


def test_nothing_drifted_changes_nothing(root):
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert plan(repair(root)) == (False, "", False)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("drift", ["edited", "disabled"])
def test_a_drifted_site_is_put_back_and_the_one_in_force_recorded(root, drift):
    if drift == "edited":
        (root / SITE).write_text("edited by hand\n")
    else:
        (root / ENABLED).unlink()
    (root / "etc/fdeploy/shop/site.desired").write_text("server {\n}\n\n")   # byte for byte, the trailing blank line too
    assert plan(repair(root)) == (True, "", False)
    assert (root / SITE).read_text() == "server {\n}\n\n"
    assert plan(repair(root)) == (False, "", False)   # in force now
    assert os.readlink(root / ENABLED) == "/" + SITE
    saved = json.loads((root / "etc/fdeploy/shop/site.saved.json").read_text())["site"]
    assert saved == ("edited by hand\n" if drift == "edited" else None)   # nginx -t refuses it: site-restore puts this back


@pytest.mark.parametrize("path", ["etc/systemd/system/fdeploy-shop@.service", "etc/systemd/system/fdeploy-shop@.socket", "etc/fdeploy/shop/env"])
def test_a_unit_or_environment_changed_by_hand_activates_again(root, path):
    (root / path).write_text("edited by hand\n")
    r = repair(root)
    assert plan(r) == (False, "", True)
    assert "activating the deployed release %s again" % RID in r["log"]
    assert (root / path).read_text() == "edited by hand\n"   # the switch puts the deployed one in force, not this


def test_a_stopped_app_is_activated_again(root):
    assert plan(repair(root, active=False)) == (False, "", True)


def test_a_live_slot_on_another_release_is_activated_again(root):
    other = root / "srv/shop/releases/fedcba987654"
    other.mkdir()
    (other / ".fdeploy-release.json").write_text("{}")
    (root / "srv/shop/slots/blue").unlink()
    (root / "srv/shop/slots/blue").symlink_to(other)
    assert plan(repair(root)) == (False, "", True)


def test_a_deleted_release_is_installed_again_from_its_upload(root):
    (root / "srv/shop/releases" / RID / ".fdeploy-release.json").unlink()
    r = repair(root)
    assert r["site"] is False and r["activate"] is True
    assert json.loads(r["install"]) == {"APP": "shop", "RELEASE_ID": RID, "RUNTIME": "docker"}
    assert "installing it again from its upload" in r["log"]


def test_a_deleted_release_without_its_upload_is_refused_before_anything_changes(root):
    (root / "srv/shop/releases" / RID / ".fdeploy-release.json").unlink()
    (root / "home/.fdeploy/shop/uploads" / RID).rmdir()
    (root / SITE).write_text("edited by hand\n")
    r = repair(root, status=1)
    assert "and its upload were deleted from the server" in r["error"] and "--target-replace" in r["error"]
    assert (root / SITE).read_text() == "edited by hand\n"


def test_nothing_deployed_activates_nothing(root):
    (root / "srv/shop/slots/activation.live.json").unlink()
    assert plan(repair(root, active=False)) == (False, "", False)
