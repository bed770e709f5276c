"""went-live: the switch records the live release in state.json and points live-scripts (what
fdeploy runs) at the bundle of the deploy that went live — not at the newest upload."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import live  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

import pytest  # noqa: E402


def test_went_live_records_the_release_and_points_live_scripts(tmp_path):
    (tmp_path / "etc/fdeploy").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    home = tmp_path / "home/deploy/.fdeploy/shop"
    old, new, newer = home / "scripts-aaaaaaaaaaaa", home / "scripts-bbbbbbbbbbbb", home / "scripts-cccccccccccc"
    for d in (old, new, newer):
        d.mkdir(parents=True)
    host = Host(root=str(tmp_path))
    params = {"APP": "shop", "RELEASE_ID": "0123456789ab", "STRATEGY": "blue-green"}
    live.went_live(host, params, print, 0, bundle=str(old))
    live.went_live(host, params, print, 0, bundle=str(new))
    assert os.readlink(home / "live-scripts") == "scripts-bbbbbbbbbbbb"
    state = json.loads((tmp_path / "etc/fdeploy/shop/state.json").read_text())
    assert state["live"]["release"] == "0123456789ab" and state["live"]["scripts"] == str(new)
    assert sorted(os.listdir(home)) == ["live-scripts", "scripts-aaaaaaaaaaaa", "scripts-bbbbbbbbbbbb", "scripts-cccccccccccc"]
    with pytest.raises(AgentError, match="script bundle"):
        live.went_live(host, params, print, 0, bundle=str(home / "live-scripts"))
