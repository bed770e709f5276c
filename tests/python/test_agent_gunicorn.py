"""The Gunicorn options that depend on the version a release installed: `--no-control-socket` only
for Gunicorn 25.1 and later (an older pin refuses it), per slot (slots/<slot>.env)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import gunicorn  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

RID = "0123456789ab"


def release_with(tmp_path, version):
    (tmp_path / "etc/fdeploy").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    site = tmp_path / "srv/shop/releases" / RID / ".venv/lib/python3.11/site-packages"
    site.mkdir(parents=True, exist_ok=True)
    if version:
        (site / ("gunicorn-%s.dist-info" % version)).mkdir()
    return gunicorn.slot_env(Host(root=str(tmp_path)), {"APP": "shop", "RELEASE_ID": RID}, lambda line: None, 0)   # slots.py writes it


@pytest.mark.parametrize("version, flags", [
    ("20.1.0", ""), ("21.2.0", ""), ("25.0.3", ""), ("25.1.0", "--no-control-socket"), ("27.0.1", "--no-control-socket"),
    (None, "--no-control-socket"),
])
def test_the_slot_env_carries_the_options_its_gunicorn_takes(tmp_path, version, flags):
    r = release_with(tmp_path, version)
    assert r["text"] == "RELEASE_ID=%s\nGUNICORN_FLAGS=%s\n" % (RID, flags)
    assert r["gunicorn"] == (version or "")


def test_the_unit_expands_the_slot_flags():
    from fdeploy_agent.app import App
    from fdeploy_agent.units import python_unit
    unit = python_unit(App("shop", "/srv/shop", "shop"), 2, 60, "wsgi:app")
    assert " $GUNICORN_FLAGS wsgi:app\n" in unit and "--no-control-socket" not in unit
    assert gunicorn.flags((21, 2, 0)) == []
