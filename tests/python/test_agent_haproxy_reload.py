"""haproxy.cfg changes one at a time, and the servers' states across a reload (agent haproxy_reload.py)."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

from fdeploy_agent import haproxy, haproxy_config, haproxy_reload, lb_maintenance  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from test_agent_haproxy import FRAG, Box  # noqa: E402

HEAD = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
        "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state "
        "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
        "srv_agent_addr srv_agent_port\n")
DRAIN = 8   # SRV_ADMF_FDRAIN


class Haproxy:
    """The runtime API of a running HAProxy: servers' admin states, and a worker pid a reload changes."""

    def __init__(self):
        self.pid, self.admin, self.addr = 100, {}, {}

    def __call__(self, cmd):
        if cmd == "show info":
            return "Name: HAProxy\nPid: %d\n" % self.pid
        if cmd == "show servers state":
            return HEAD + "".join("3 %s 1 %s %s 2 %d 1 1 5 15 3 4 6 0 0 0 - 80 - 0 0 - - 0\n" % (be, srv, self.addr[(be, srv)], adm)
                                  for (be, srv), adm in sorted(self.admin.items())) + "\n"
        if cmd == "show stat":
            return "# pxname,svname,scur,status\n" + "".join("%s,%s,0,%s\n" % (be, srv, "DRAIN" if adm else "UP")
                                                          for (be, srv), adm in sorted(self.admin.items()))
        if cmd.startswith("set server "):
            target, state = cmd.split()[2], cmd.split()[4]
            self.admin[tuple(target.split("/"))] = DRAIN if state == "drain" else 0
            return "\n"
        return "\n"

    def load(self, config, state):
        """A new worker: the config's servers, ready unless the state file (by backend and server name) says not."""
        self.pid += 1
        self.addr = haproxy_reload.servers(config)
        self.admin = {k: 0 for k in self.addr}
        for line in (state or "").splitlines()[2:]:
            f = line.split()
            if (f[1], f[3]) in self.admin:
                self.admin[(f[1], f[3])] = int(f[6])


class ReloadBox(Box):
    """Box whose reload records the saved server-state file at that moment, then starts a new worker."""

    def __init__(self, tmp_path, check_seconds=0.0):
        super().__init__(tmp_path)
        self.api, self.saved, self.check_seconds = Haproxy(), [], check_seconds

    def run(self, argv, merge_output=False, input=None):
        if argv[0] == "haproxy":
            time.sleep(self.check_seconds)
        if argv[-2:] == ["reload-or-restart", "haproxy"]:
            f = self.root / haproxy_config.SERVER_STATE.lstrip("/")
            self.saved.append(f.read_text() if f.exists() else None)
            self.api.load((self.root / "etc/haproxy/haproxy.cfg").read_text(), self.saved[-1])
        return Box.run(self, argv, merge_output, input)


def quiet(_):
    pass


def test_the_rendered_config_loads_the_saved_server_states():
    cfg = haproxy_config.render([FRAG])
    assert "    server-state-file /etc/fdeploy/haproxy/server-state\n" in cfg.split("defaults")[0]
    assert "    load-server-state-from-file global\n" in cfg.split("defaults")[1]


def test_a_drained_server_is_saved_before_the_reload_and_a_replaced_one_is_not(tmp_path):
    b = ReloadBox(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0, api=b.api)
    haproxy.lb_drain(b.host, {"APP": "shop", "HOST": "10.0.0.1", "WAIT": 0}, quiet, 0, api=b.api)
    # `fdeploy maintenance off` during the rollout reloads HAProxy: h1 must stay drained
    lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on", "MESSAGE": "x"}, quiet, 0, api=b.api)
    lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "off"}, quiet, 0, api=b.api)
    for saved in b.saved[1:]:
        assert "3 app_shop 1 h1 - 2 8 " in saved and "3 app_shop 1 h2 - 2 0 " in saved
    # h2 replaced by another host: its line goes (the new host starts fresh); h1 keeps its drain
    haproxy.lb_configure(b.host, dict(FRAG, HOSTS=["10.0.0.1", "10.0.0.9"]), quiet, 0, api=b.api)
    assert " h1 - 2 8 " in b.saved[-1] and " h2 " not in b.saved[-1]
    # a later ready is saved too: a restart of haproxy by anyone puts back what the rollout set last
    haproxy.lb_ready(b.host, {"APP": "shop", "HOST": "10.0.0.1", "WAIT_UP": 0}, quiet, 0, api=b.api)
    assert " h1 - 2 0 " in (tmp_path / "etc/fdeploy/haproxy/server-state").read_text()
    assert oct((tmp_path / "etc/fdeploy/haproxy/server-state").stat().st_mode & 0o777) == "0o600"


def test_no_running_haproxy_means_no_state_file(tmp_path):
    b = ReloadBox(tmp_path)
    os.makedirs(tmp_path / "etc/fdeploy/haproxy", 0o700)
    (tmp_path / "etc/fdeploy/haproxy/server-state").write_text(HEAD + "3 app_shop 1 h1 - 2 8 1 1 5 15 3 4 6 0 0 0 - 80 - 0 0 - - 0\n")

    def down(cmd):
        raise haproxy_reload.Unreachable("no socket")
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0, api=down)
    assert b.saved == [None]   # a stale drain of long ago is not put back on a start


def test_a_reload_whose_new_worker_never_answers_fails(tmp_path):
    b = ReloadBox(tmp_path)
    now = [0.0]
    b.host._clock, b.host._sleep = (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))
    b.api.load = lambda config, state: None   # the old worker goes on answering
    with pytest.raises(AgentError, match="no new worker answered within 30s"):
        haproxy.lb_configure(b.host, dict(FRAG), quiet, 0, api=b.api)


def test_configure_and_maintenance_at_once_both_land(tmp_path):
    """Without the lock, the two wrote one candidate file: one renamed the other's, the other died on it
    (FileNotFoundError) with its page in place but no maintenance rule in the live config."""
    b = ReloadBox(tmp_path, check_seconds=0.3)
    b.host = Host(root=str(tmp_path), run=b.run, which=lambda c: "/usr/sbin/" + c)
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 30)
    errors = []

    def run(f):
        try:
            f()
        except Exception as e:   # noqa: BLE001 (the test reports it)
            errors.append(repr(e))
    calls = [lambda: haproxy.lb_configure(b.host, dict(FRAG, HOSTS=["10.0.0.1", "10.0.0.2", "10.0.0.3"]), quiet, 30),
             lambda: lb_maintenance.lb_maintenance(b.host, {"APP": "shop", "MODE": "on", "MESSAGE": "x"}, quiet, 30)]
    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    threads[0].start()
    time.sleep(0.1)   # the first is in its `haproxy -c`
    threads[1].start()
    for t in threads:
        t.join()
    assert errors == []
    live = (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    assert "server h3 10.0.0.3:80" in live and "http-request return status 503" in live
    assert sorted(p.name for p in (tmp_path / "etc/haproxy").iterdir()) == ["haproxy.cfg"]


def test_a_host_leaving_the_app_is_drained_before_the_reload_that_takes_it_out(tmp_path):
    """A server removed from `servers` (issue 32): drained, its in-flight requests waited for (DRAIN_SECONDS),
    then the reload without it; the host that stays is untouched. haproxy -c refusing: it serves again."""
    b = ReloadBox(tmp_path)
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0, api=b.api)
    events, in_flight = [], [2, 1, 0]

    def api(cmd):
        answer = b.api(cmd)
        if cmd.startswith("set server"):
            events.append(cmd)
        if cmd == "show stat" and b.api.admin.get(("app_shop", "h2")) == DRAIN:   # h2's requests finish while it drains
            answer = answer.replace("app_shop,h2,0,", "app_shop,h2,%d," % (in_flight.pop(0) if len(in_flight) > 1 else in_flight[0]))
        return answer
    reload_run = b.run
    b.host._run = lambda argv, merge_output=False, input=None: (events.append(" ".join(argv[-2:])), reload_run(argv, merge_output, input))[1]
    log = []
    assert haproxy.lb_configure(b.host, dict(FRAG, HOSTS=["10.0.0.1"], DRAIN_SECONDS=5), log.append, 0, api=api) == {"changed": True}
    assert events[0] == "set server app_shop/h2 state drain" and events.index("reload-or-restart haproxy") > 0, events
    assert not [e for e in events if "app_shop/h1" in e]
    assert in_flight == [0] and any("h2 (10.0.0.2) drained before it leaves (0 in flight left)" in m for m in log), log
    assert " h2 " not in b.saved[-1] and "server h2" not in (tmp_path / "etc/haproxy/haproxy.cfg").read_text()
    # refused by haproxy -c: the part as it was, and the leaving host back in service
    haproxy.lb_configure(b.host, dict(FRAG), quiet, 0, api=b.api)
    b.check = 1
    with pytest.raises(AgentError, match="haproxy -c"):
        haproxy.lb_configure(b.host, dict(FRAG, HOSTS=["10.0.0.1"], DRAIN_SECONDS=0), quiet, 0, api=b.api)
    assert b.api.admin[("app_shop", "h2")] == 0
    assert json.loads((tmp_path / "etc/fdeploy/haproxy/shop.json").read_text())["HOSTS"] == FRAG["HOSTS"]
