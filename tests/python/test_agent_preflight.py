"""The agent's preflight verbs without a server: what runs (the slots' sandbox, the staged or the
in-force environment, the unit's Gunicorn options), what a result means to the user (the exception
first, a killed preflight never blamed on the code, no "live release" on a first deploy), and the
switch skipping a preflight that already passed for the same release and settings."""
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
PARAMS = {"APP": "shop", "RELEASE_ID": RID, "APP_MODULE": "wsgi:app", "HEALTH_PATH": "/health", "HEALTH_TIMEOUT": 30}
TRACEBACK = "Traceback (most recent call last):\n  File \"wsgi.py\", line 3\nOSError: [Errno 30] Read-only file system: 'logs'\n"


class FakeRun:
    def __init__(self, rc=0, out="GET /health: HTTP 200\n"):
        self.rc, self.out, self.calls = rc, out, []

    def __call__(self, argv, merge_output=False):
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(argv, self.rc, self.out, "")


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc/fdeploy").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    (tmp_path / "srv/shop/releases" / RID).mkdir(parents=True)
    (tmp_path / "srv/shop/releases" / RID / ".fdeploy-release.json").write_text("{}")
    (tmp_path / "run").mkdir()
    return tmp_path


def agent(root, run, verb, params=PARAMS):
    host = Host(root=str(root), run=run, user_ids=lambda n: (1001, 1001), which=lambda c: "/usr/bin/" + c,
                kill_user=lambda uid, gid: None)
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def stage(root):
    nothing = FakeRun()
    assert agent(root, nothing, "env-stage", {"APP": "shop", "ENV": "A=1\n"})[0] == 0
    assert agent(root, nothing, "unit-stage", {"APP": "shop", "WORKERS": 2, "APP_MODULE": "wsgi:app", "TIMEOUT": 60})[0] == 0
    assert nothing.calls == []


def test_before_the_migrations_with_the_staged_environment_and_the_units_options(root):
    stage(root)
    run = FakeRun()
    rc, result, err = agent(root, run, "preflight")
    assert rc == 0 and result["loads"] and not result["skipped"]
    argv = run.calls[0]
    # as a slot user (nothing live yet: the first), in the app's group
    assert argv[:2] == ["systemd-run", "--quiet"] and "User=shop_1" in argv and "Group=shop" in argv and "NoNewPrivileges=yes" in argv
    assert "EnvironmentFile=/etc/fdeploy/shop/env.desired" in argv
    assert argv[-15:] == ["/srv/shop/releases/%s/.venv/bin/python" % RID, "/srv/shop/tools/preflight.py", "wsgi:app", "-", "--workers", "2", "--timeout", "60",
                          "--graceful-timeout", "30", "--access-logfile", "-", "--error-logfile", "-", "--no-control-socket"]
    script = os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "preflight.py")
    assert (root / "srv/shop/tools/preflight.py").read_bytes() == open(script, "rb").read()
    assert "preflight: release %s loads wsgi:app" % RID in err


def test_beside_a_live_slot_the_switch_skips_a_preflight_that_passed_with_the_same_settings(root):
    stage(root)
    agent(root, FakeRun(), "preflight")
    run = FakeRun()
    rc, result, _ = agent(root, run, "preflight-switch-light")
    assert rc == 0 and result["skipped"] and run.calls == []
    # new settings staged since: the switch checks again, with the environment in force
    agent(root, FakeRun(), "env-stage", {"APP": "shop", "ENV": "A=2\n"})
    rc, result, _ = agent(root, run, "preflight-switch-light")
    assert rc == 0 and not result["skipped"] and "EnvironmentFile=/etc/fdeploy/shop/env" in run.calls[0]


def test_before_the_live_slot_restarts_the_switch_requests_the_health_path(root):
    stage(root)
    agent(root, FakeRun(), "preflight")
    run = FakeRun()
    rc, result, _ = agent(root, run, "preflight-switch")
    assert rc == 0 and not result["skipped"] and run.calls[0][-12] == "/health"


def test_code_that_does_not_load_names_the_exception_first_and_the_remedy(root):
    stage(root)
    rc, result, _ = agent(root, FakeRun(1, TRACEBACK), "preflight")
    first = result["error"].splitlines()[0]
    assert rc == 1 and first.startswith("release %s does not load (flask-deploy:appModule wsgi:app): OSError: [Errno 30]" % RID)
    assert "flask-deploy:sharedDirs" in first and "stdout" in first
    assert "Nothing was live yet" in first and "live release is untouched" not in first
    (root / "srv/shop/current").symlink_to("releases/" + RID)
    rc, result, _ = agent(root, FakeRun(1, TRACEBACK), "preflight")
    assert "the live release is untouched" in result["error"].splitlines()[0]


def test_a_killed_preflight_is_not_blamed_on_the_code(root):
    stage(root)
    rc, result, _ = agent(root, FakeRun(-9, ""), "preflight")
    assert rc == 1 and "killed" in result["error"] and "does not load" not in result["error"]
    # systemd-run --wait exits 255 when the process died of a signal (SIGKILL from another process)
    rc, result, _ = agent(root, FakeRun(255, "Traceback (most recent call last):\nKeyboardInterrupt\n"), "preflight")
    assert rc == 1 and "killed by a signal from outside" in result["error"] and "does not load" not in result["error"]
    # ... and 0 for one SIGTERM ended: without preflight.py's result line that is no pass
    rc, result, _ = agent(root, FakeRun(0, "importing the app\n"), "preflight")
    assert rc == 1 and "stopped by a signal from outside" in result["error"]
    rc, result, _ = agent(root, FakeRun(0, "loads wsgi:app\natexit output of the app\n"), "preflight")
    assert rc == 0 and result["loads"]


def test_light_mode_leaves_code_that_does_not_load_to_the_slots_check(root):
    stage(root)
    rc, result, err = agent(root, FakeRun(1, TRACEBACK), "preflight-switch-light")
    assert rc == 0 and result["loads"] is False and "its slot's check follows" in err


def test_health_path_4xx_and_refused_options(root):
    stage(root)
    rc, result, _ = agent(root, FakeRun(2, "HTTP 404\n"), "preflight-switch")
    assert rc == 1 and "flask-deploy:healthPath" in result["error"]
    rc, result, _ = agent(root, FakeRun(4, "the release's Gunicorn 21.2.0 refuses the options …\n"), "preflight")
    assert rc == 1 and "Gunicorn 21.2.0 refuses" in result["error"]


def test_a_release_that_is_not_installed(root):
    rc, result, _ = agent(root, FakeRun(), "preflight", dict(PARAMS, RELEASE_ID="ffffffffffff"))
    assert rc == 1 and "not installed" in result["error"]
