"""The balancer (agent haproxy.py, haproxy_config.py): haproxy.cfg rendered from data, validated with
`haproxy -c` before a reload, drain/ready through the runtime API (a fake socket here)."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import haproxy, haproxy_config  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

FRAG = {"APP": "shop", "SERVER_NAME": "_", "HEALTH_PATH": "/health", "HOSTS": ["10.0.0.1", "10.0.0.2"]}


def test_render_one_backend_with_a_check_per_host():
    cfg = haproxy_config.render([FRAG])
    assert "default_backend app_shop" in cfg
    assert "    server h1 10.0.0.1:80\n    server h2 10.0.0.2:80\n" in cfg
    assert "http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost" in cfg
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin" in cfg


def test_two_apps_route_by_host_name():
    other = dict(FRAG, APP="blog", SERVER_NAME="blog.example.com *.blog.example", HOSTS=["10.0.0.3"])
    cfg = haproxy_config.render([other, FRAG])
    assert "use_backend app_blog if { hdr(host) -i blog.example.com }" in cfg
    assert "use_backend app_blog if { hdr_end(host) -i .blog.example }" in cfg
    assert "default_backend app_shop" in cfg
    assert cfg == haproxy_config.render([FRAG, other])   # the same inputs, the same bytes


@pytest.mark.parametrize("bad,word", [({"HOSTS": ["10.0.0.1\n    bind :81"]}, "servers"), ({"HEALTH_PATH": "/x y"}, "healthPath"),
                                      ({"SERVER_NAME": "a.example\nlisten"}, "serverName"), ({"HOSTS": []}, "servers")])
def test_bad_values_are_refused_naming_the_setting(bad, word):
    with pytest.raises(AgentError, match=word):
        haproxy_config.render([dict(FRAG, **bad)])


class Box:
    """A server root with haproxy -c answering CHECK, systemctl recorded."""

    def __init__(self, tmp_path, check=0):
        self.root, self.check, self.ran = tmp_path, check, []
        (tmp_path / "etc/haproxy").mkdir(parents=True)
        self.host = Host(root=str(tmp_path), run=self.run, which=lambda c: "/usr/sbin/" + c)

    def run(self, argv, merge_output=False, input=None):
        self.ran.append(list(argv))
        if argv[0] == "haproxy":
            return subprocess.CompletedProcess(argv, self.check, "" if self.check == 0 else "[ALERT] parsing error", "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_configure_validates_then_reloads_and_a_second_run_changes_nothing(tmp_path):
    b = Box(tmp_path)
    assert haproxy.lb_configure(b.host, dict(FRAG), lambda s: None, 0) == {"changed": True}
    assert (tmp_path / "etc/haproxy/haproxy.cfg").read_text() == haproxy_config.render([FRAG])
    assert [a[:4] for a in b.ran if a[0] == "haproxy"] == [["haproxy", "-c", "-q", "-f"]]
    assert b.ran[0][4].startswith(str(tmp_path / "etc/haproxy/haproxy.cfg.fdeploy-new-"))   # checked, then renamed
    assert sorted(p.name for p in (tmp_path / "etc/haproxy").iterdir()) == ["haproxy.cfg"]
    assert ["systemctl", "reload-or-restart", "haproxy"] in b.ran
    b.ran.clear()
    assert haproxy.lb_configure(b.host, dict(FRAG), lambda s: None, 0) == {"changed": False}
    assert not [a for a in b.ran if "reload-or-restart" in a]


def test_a_config_haproxy_refuses_leaves_the_running_one(tmp_path):
    b = Box(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), lambda s: None, 0)
    before = (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    b.check = 1
    with pytest.raises(AgentError, match="haproxy -c.*unchanged"):
        haproxy.lb_configure(b.host, dict(FRAG, HOSTS=["10.0.0.1"]), lambda s: None, 0)
    assert (tmp_path / "etc/haproxy/haproxy.cfg").read_text() == before
    assert json.loads((tmp_path / "etc/fdeploy/haproxy/shop.json").read_text())["HOSTS"] == FRAG["HOSTS"]


class Api:
    HEAD = "# pxname,svname,scur,status\n"

    def __init__(self, scur):
        self.scur, self.sent = list(scur), []

    def __call__(self, cmd):
        self.sent.append(cmd)
        if cmd == "show stat":
            n = self.scur.pop(0) if len(self.scur) > 1 else self.scur[0]
            return self.HEAD + "app_shop,h1,%d,DRAIN\napp_shop,h2,0,UP\napp_shop,BACKEND,0,UP\n" % n
        return "\n"


def test_drain_waits_for_in_flight_requests(tmp_path):
    b = Box(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), lambda s: None, 0)
    api = Api([2, 2, 1, 0])
    r = haproxy.lb_drain(b.host, {"APP": "shop", "HOST": "10.0.0.1", "WAIT": 30}, lambda s: None, 0, api=api)
    assert "set server app_shop/h1 state drain" in api.sent and r["inFlight"] == 0


def test_ready_checks_the_host_through_its_nginx_first(tmp_path):
    b = Box(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), lambda s: None, 0)
    now = [0.0]
    b.host._clock, b.host._sleep = (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))
    b.run = lambda argv, merge_output=False, input=None: subprocess.CompletedProcess(argv, 0, "boom\n500", "")
    b.host._run = b.run
    api = Api([0])
    with pytest.raises(AgentError, match="host 10.0.0.2 failed its health check.*HTTP 500"):
        haproxy.lb_ready(b.host, {"APP": "shop", "HOST": "10.0.0.2", "WAIT_UP": 3}, lambda s: None, 0, api=api)
    assert not [c for c in api.sent if "state ready" in c]   # it stays drained
    b.host._run = lambda argv, merge_output=False, input=None: subprocess.CompletedProcess(argv, 0, "ok\n200", "")
    haproxy.lb_ready(b.host, {"APP": "shop", "HOST": "10.0.0.2", "WAIT_UP": 3}, lambda s: None, 0, api=api)
    assert "set server app_shop/h2 state ready" in api.sent


def test_delete_removes_this_apps_part_and_stops_haproxy_with_none_left(tmp_path):
    b = Box(tmp_path)
    blog = dict(FRAG, APP="blog", SERVER_NAME="blog.example", HOSTS=["10.0.0.3"])
    haproxy.lb_configure(b.host, dict(FRAG), lambda s: None, 0)
    haproxy.lb_configure(b.host, blog, lambda s: None, 0)
    assert haproxy.lb_delete(b.host, {"APP": "shop"}, lambda s: None, 0) == {"changed": True}
    assert (tmp_path / "etc/haproxy/haproxy.cfg").read_text() == haproxy_config.render([blog])
    assert haproxy.lb_delete(b.host, {"APP": "shop"}, lambda s: None, 0) == {"changed": False}   # again: nothing to do
    b.ran.clear()
    haproxy.lb_delete(b.host, {"APP": "blog"}, lambda s: None, 0)
    assert b.ran == [["systemctl", "disable", "--now", "haproxy"]]
    assert not list((tmp_path / "etc/fdeploy/haproxy").iterdir())
