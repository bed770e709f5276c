"""server_state.py: the ServerState resource's verbs (what state.sh was). state-read waits for the
deploy lock; state-fix tests the site it put back with nginx -t (reload, or the site in force
restored and the repair refused), runs the release's install and the activation again with their
recorded parameters, and reports the settled state; nothing drifted: nothing runs."""
import fcntl
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, lock, server_state  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
import test_agent_repair  # noqa: E402
from test_agent_repair import RID, SITE  # noqa: E402


@pytest.fixture
def root(tmp_path, monkeypatch):
    return test_agent_repair.root.__wrapped__(tmp_path, monkeypatch)   # the repair tests' server root


class Machine:
    """systemctl, nginx -t and the deploy steps; ACTIVE: the live slot runs; STEP_RC: the steps' exit."""

    def __init__(self, active=True, nginx_ok=True, step_rc=0):
        self.active, self.nginx_ok, self.step_rc, self.ran, self.inputs = active, nginx_ok, step_rc, [], {}

    def __call__(self, argv, merge_output=False, input=None):
        self.ran.append(list(argv))
        rc, out = 0, ""
        if argv[:2] == ["systemctl", "is-active"]:
            rc = 0 if self.active else 3
        elif argv == ["nginx", "-t"]:
            rc, out = (0, "ok") if self.nginx_ok else (1, "nginx: [emerg] unknown directive in other.conf")
        elif self.step_of(argv):
            self.inputs[self.step_of(argv)] = input
            rc, out = self.step_rc, "step output\n"
        return subprocess.CompletedProcess(argv, rc, out, "")

    @staticmethod
    def step_of(argv):
        """The deploy step ARGV runs (server_state.STEPS: "install", "activate"), or None."""
        return next((name for name, line in server_state.STEPS.items() if list(argv) == line), None)

    def steps(self):
        return [self.step_of(a) for a in self.ran if self.step_of(a)]


@pytest.fixture(autouse=True)
def run_dir(root):
    (root / "run").mkdir()
    (root / "var/log/nginx").mkdir(parents=True)


def agent(root, verb, machine):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO('{"APP": "shop"}'), stdout=out, stderr=err, host=Host(root=str(root), run=machine))
    return rc, json.loads(out.getvalue()), err.getvalue()


def test_read_reports_the_live_state(root):
    rc, r, _ = agent(root, "state-read", Machine())
    assert rc == 0 and r["release"] == RID and r["running"] is True and r["siteInForce"] is True and r["deployedRelease"] == RID


def test_read_waits_for_the_deploy_lock_and_names_its_holder(root, monkeypatch):
    monkeypatch.setenv("FDEPLOY_LOCK_WAIT", "0")
    host = Host(root=str(root))
    fd = lock.open_lock(host, "shop", lambda s: None, 0)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        rc, r, _ = agent(root, "state-read", Machine())
    finally:
        os.close(fd)
    assert rc == 1 and "another deploy of 'shop' is running on this server: the lock /run/fdeploy/shop.lock is held by pid %d" % os.getpid() in r["error"]
    assert agent(root, "state-read", Machine())[0] == 0   # released: read at once


def test_not_deployed_is_refused(root):
    os.unlink(root / "etc/fdeploy/shop.conf")
    for verb in ("state-read", "state-fix"):
        rc, r, _ = agent(root, verb, Machine())
        assert rc == 3 and "not deployed on this server" in r["error"]


def test_fix_with_nothing_drifted_runs_nothing(root):
    m = Machine()
    rc, r, _ = agent(root, "state-fix", m)
    assert rc == 0 and r["running"] is True
    assert m.steps() == [] and ["nginx", "-t"] not in m.ran


def test_fix_puts_the_site_back_tests_it_and_reloads(root):
    (root / SITE).write_text("edited by hand\n")
    m = Machine()
    rc, r, err = agent(root, "state-fix", m)
    assert rc == 0 and r["siteInForce"] is True, err
    assert m.ran.index(["nginx", "-t"]) < m.ran.index(["systemctl", "reload", "nginx"])
    assert not (root / "etc/fdeploy/shop/site.saved.json").exists()   # the record dropped: the change stays
    assert (root / "etc/fdeploy/shop/upstream.conf").read_text().endswith("server unix:/run/fdeploy-shop/live.sock;\n")
    assert ["install", "-m", "0640", "-o", "www-data", "-g", "adm", "/dev/null", "/var/log/nginx/fdeploy-shop.upstream.log"] in m.ran
    assert "repaired: the deployed nginx site is in force again" in err


def test_fix_with_a_site_nginx_rejects_restores_the_one_in_force(root):
    (root / SITE).write_text("edited by hand\n")
    m = Machine(nginx_ok=False)
    rc, r, err = agent(root, "state-fix", m)
    assert rc == 1 and "nginx's configuration is invalid apart from this site" in r["error"] and "other.conf" in err
    assert (root / SITE).read_text() == "edited by hand\n"
    assert ["systemctl", "reload", "nginx"] not in m.ran and m.steps() == []


def test_fix_activates_a_stopped_app_again_with_the_recorded_parameters(root):
    m = Machine(active=False)
    rc, r, err = agent(root, "state-fix", m)
    assert rc == 0 and m.steps() == ["activate"] and "step output" in err
    assert m.inputs["activate"] == (root / "srv/shop/slots/activation.live.json").read_text()
    assert server_state.STEPS["activate"][-2].startswith(server_state.BUNDLE + "/")


def test_fix_installs_a_deleted_release_from_its_upload_then_activates(root):
    os.unlink(root / "srv/shop/releases" / RID / ".fdeploy-release.json")
    m = Machine()
    rc, r, _ = agent(root, "state-fix", m)
    assert rc == 0 and m.steps() == ["install", "activate"]
    assert json.loads(m.inputs["install"]) == {"APP": "shop", "RELEASE_ID": RID, "RUNTIME": "docker"}


def test_a_failed_activation_fails_the_repair_naming_it(root):
    rc, r, _ = agent(root, "state-fix", Machine(active=False, step_rc=1))
    assert rc == 1 and r["error"].startswith("the repair could not activate the deployed release")
