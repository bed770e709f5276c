"""The balancer's edge (README "Scale out"): maintenance mode at the balancer (lb_maintenance.py) — one
page for every host, kept by every deploy, refused before anything changes when HAProxy would not load it."""
import json
import os
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
