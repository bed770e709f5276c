"""ops.py: the server side of `fdeploy` (status, releases, logs, exec, console, maintenance, lock),
from a temporary server root with systemctl, curl, nginx and docker replaced at the Host seam."""
import io
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import app as apps, cli, history, ops  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

OLD, RID = "0123456789ab", "ba9876543210"
HISTORY = ("2026-12-01T10:00:00Z %s live strategy=restart schema=1\n"
           "2026-12-02T10:00:00Z %s failed strategy=blue-green schema=1\n"
           "2026-12-03T10:00:00Z %s live strategy=blue-green schema=2\n" % (OLD, RID, RID))


@pytest.fixture
def root(tmp_path):
    for d in ("etc/fdeploy/shop", "etc/systemd/system", "etc/nginx/sites-available", "etc/nginx/sites-enabled",
              "srv/shop/slots", "srv/shop/shared/db", "run/fdeploy"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    for rid, at in ((OLD, "2026-12-01T09:00:00Z"), (RID, "2026-12-02T09:00:00Z")):
        (tmp_path / "srv/shop/releases" / rid / ".venv/bin").mkdir(parents=True)
        (tmp_path / "srv/shop/releases" / rid / ".fdeploy-release.json").write_text(json.dumps({"installed_at": at}))
    (tmp_path / "srv/shop/shared/db/app.db").write_bytes(b"x" * 5000)
    (tmp_path / "srv/shop/slots/blue").symlink_to(tmp_path / "srv/shop/releases" / RID)
    (tmp_path / "srv/shop/slots/green").symlink_to(tmp_path / "srv/shop/releases" / OLD)
    (tmp_path / "srv/shop/slots/live").write_text("blue\n")
    (tmp_path / "srv/shop/slots/activation.live.json").write_text(json.dumps({"RELEASE_ID": RID, "HEALTH_PATH": "/up"}))
    (tmp_path / "srv/shop/history.log").write_text(HISTORY)
    (tmp_path / "run/fdeploy/shop.lock.last").write_text("4242 2026-12-03T09:59:00Z alice\n")
    return tmp_path


class Fake:
    """The machine's commands: curl answers CODE, units are STATES, nginx -t NGINX_OK, docker CONTAINER."""

    def __init__(self, code="200", states=None, nginx_ok=True, container=False, expand=True):
        self.code, self.states, self.nginx_ok, self.container, self.expand = code, states or {}, nginx_ok, container, expand

    def __call__(self, argv, merge_output=False):
        out, rc = "", 0
        if argv[0] == "curl":
            out = self.code
        elif argv[:2] == ["systemctl", "show"]:
            out = "ActiveState=%s\nSubState=%s\n" % tuple(self.states.get(argv[-1], "inactive/dead").split("/"))
        elif argv[:2] == ["systemctl", "is-active"]:
            rc = 0 if self.states.get(argv[-1], "").startswith("active") else 3
        elif argv == ["nginx", "-t"]:
            rc, out = (0, "syntax is ok") if self.nginx_ok else (1, "nginx: [emerg] bad thing in maintenance.conf")
        elif argv[:3] == ["docker", "container", "inspect"]:
            rc = 0 if self.container else 1
        elif argv == ["systemd-run", "--help"]:
            out = "  --expand-environment=BOOL\n" if self.expand else "  --pipe\n"
        return subprocess.CompletedProcess(argv, rc, out, "")


def call(root, verb, params, fake=None, which=None):
    out, err = io.StringIO(), io.StringIO()
    host = Host(root=str(root), run=fake or Fake(states={"fdeploy-shop@blue.service": "active/running"}),
                which=which or (lambda c: None), user_ids=lambda name: (1000, 1000))
    status = cli.main([verb], stdin=io.StringIO(json.dumps(dict({"APP": "shop"}, **params))), stdout=out, stderr=err, host=host)
    return status, json.loads(out.getvalue()), err.getvalue(), host


def test_history_entries_read_the_history_before_and_after_its_conversion(root):
    host = Host(root=str(root))
    app = apps.load(host, "shop")
    want = [(OLD, "live", "restart", "1"), (RID, "failed", "blue-green", "1"), (RID, "live", "blue-green", "2")]
    h = ops._history_entries(host, app)   # history.log, as the previous version wrote it
    assert [(e["release"], e["status"], e["strategy"], e["schema"]) for e in h] == want
    assert h[0]["time"] == "2026-12-01T10:00:00Z"
    history.convert(host, app, lambda _: None)   # history.jsonl, as the switch converts it
    assert (root / "srv/shop/history.jsonl").exists()
    assert [(e["release"], e["status"], e["strategy"], e["schema"]) for e in ops._history_entries(host, app)] == want
    (root / "srv/shop/history.jsonl").unlink()
    (root / "srv/shop/history.log.converted").unlink()
    assert ops._history_entries(host, app) == []


def test_status_of_a_settled_server(root):
    status, st, _, host = call(root, "ops-status", {})
    assert status == 0
    assert (st["release"], st["liveSlot"], st["installedAt"], st["deployedRelease"]) == (RID, "blue", "2026-12-02T09:00:00Z", RID)
    assert st["slots"] == [{"name": "blue", "release": RID, "state": "active/running"},
                           {"name": "green", "release": OLD, "state": "inactive/dead"}]
    assert st["health"] == {"path": "/up", "status": 200, "ok": True}
    assert ["--unix-socket", "/run/fdeploy-shop/blue.sock", "http://localhost/up"] == [c for c in host.commands if c[0] == "curl"][0][-3:]
    assert st["liveSince"] == "2026-12-03T10:00:00Z" and st["ageSeconds"] > 0
    assert st["lastDeploy"] == {"time": "2026-12-03T10:00:00Z", "release": RID, "status": "live", "strategy": "blue-green",
                                "schema": "2", "by": "alice"}
    assert st["drift"] == [] and st["maintenance"] == {"on": False} and st["canary"] is None
    assert st["disk"]["databaseBytes"] >= 5000 and st["disk"]["releasesBytes"] > 0 and st["disk"]["backupsBytes"] == 0


def test_status_drift_maintenance_canary(root):
    (root / "etc/fdeploy/shop/env.desired").write_text("A=1\n")
    (root / "etc/fdeploy/shop/env").write_text("A=2\n")
    (root / "srv/shop/slots/activation.live.json").write_text(json.dumps({"RELEASE_ID": OLD, "HEALTH_PATH": "/x;rm"}))
    (root / "etc/fdeploy/shop/maintenance.conf").write_text("# fdeploy maintenance: on since 2026-12-04T08:00:00Z by bob (ops.sh)\n")
    (root / "srv/shop/slots/canary.json").write_text(json.dumps({"slot": "green", "pid": os.getpid(), "step": 1}))
    (root / "proc" / str(os.getpid())).mkdir(parents=True)
    status, st, _, _ = call(root, "ops-status", {}, Fake(code="000", states={}))
    assert status == 0
    assert st["drift"] == ["envInForce", "notRunning", "release"]
    assert st["health"] == {"path": "/health", "status": 0, "ok": False}   # a path that is no path: the default
    assert st["maintenance"] == {"on": True, "since": "2026-12-04T08:00:00Z", "by": "bob"}
    assert st["canary"]["inProgress"] is True and st["canary"]["slot"] == "green"


@pytest.mark.parametrize("verb", ["ops-status", "ops-exec", "ops-releases", "ops-logs", "ops-maintenance"])
def test_not_deployed_is_exit_3(root, verb):
    (root / "etc/fdeploy/shop.conf").unlink()
    status, out, err, _ = call(root, verb, {"CMD": '["true"]', "MODE": "on"})
    assert status == 3 and "not deployed" in out["error"], err


def test_no_live_release_is_exit_3(root):
    (root / "srv/shop/releases" / RID / ".fdeploy-release.json").unlink()
    assert call(root, "ops-status", {})[0] == 3


def test_releases_newest_first(root):
    (root / "srv/shop/releases/aaaaaaaaaaaa").mkdir()
    (root / "srv/shop/releases/aaaaaaaaaaaa/.fdeploy-release.json").write_text("{}")   # installed, never went live
    (root / "srv/shop/history.log").write_text(HISTORY + "2026-12-04T10:00:00Z cccccccccccc failed strategy=restart schema=2\n")
    status, out, _, _ = call(root, "ops-releases", {})
    assert status == 0
    got = [(r["id"], r["status"], r["kept"], r["live"], r["firstLive"], r["schema"]) for r in out["releases"]]
    assert got == [("cccccccccccc", "failed", False, False, None, None),
                   (RID, "live", True, True, "2026-12-03T10:00:00Z", 2),
                   (OLD, "kept", True, False, "2026-12-01T10:00:00Z", 1),
                   ("aaaaaaaaaaaa", "kept", True, False, None, None)]
    assert out["releases"][1]["failedAt"] == "2026-12-02T10:00:00Z" and out["releases"][1]["installedAt"] == "2026-12-02T09:00:00Z"


def test_logs_journal_argv(root):
    _, out, _, _ = call(root, "ops-logs", {"LINES": "5", "SINCE": "15m", "GREP": "a b", "FOLLOW": True})
    assert out["argv"] == ["journalctl", "-u", "fdeploy-shop@*", "--no-pager", "-o", "short-iso", "-n", "5",
                           "--since", "-15min", "--grep", "a b", "-f"]
    _, out, _, _ = call(root, "ops-logs", {"JOB": "nightly", "SINCE": "2026-12-05 06:00"})
    assert out["argv"] == ["journalctl", "-u", "fdeploy-shop-job-nightly.service", "--no-pager", "-o", "short-iso", "-n", "100",
                           "--since", "2026-12-05 06:00"]


@pytest.mark.parametrize("params, word", [({"LINES": "1234567"}, "LINES"), ({"JOB": "../x"}, "JOB"), ({"GREP": "a\nb"}, "GREP"),
                                          ({"NGINX": True, "GREP": "("}, "--grep")])
def test_logs_bad_input_is_named(root, params, word):
    status, out, _, _ = call(root, "ops-nginx-lines" if "NGINX" in params else "ops-logs", params)
    assert status == 1 and word in out["error"]


def test_logs_nginx(root):
    (root / "var/log/nginx").mkdir(parents=True)
    now = time.time()

    def access(t, path):
        return '1.2.3.4 - - [%s +0100] "GET %s HTTP/1.1" 200 2\n' % (time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(t + 3600)), path)
    (root / "var/log/nginx/fdeploy-shop.access.log").write_text(access(now - 7200, "/old") + access(now - 60, "/new") + access(now - 30, "/newer"))
    (root / "var/log/nginx/fdeploy-shop.error.log").write_text(time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(now - 45)) + " [error] 1#1: boom\n")
    assert call(root, "ops-logs", {"NGINX": True, "SINCE": "1h"})[1]["argv"] == []   # ops-nginx-lines reads them
    _, out, _, _ = call(root, "ops-nginx-lines", {"NGINX": True, "SINCE": "1h"})
    assert [line.split()[-4 if "GET" in line else -1] for line in out["lines"]] == ["/new", "boom", "/newer"]
    _, out, _, _ = call(root, "ops-nginx-lines", {"NGINX": True, "GREP": "old|newer", "LINES": "1"})
    assert len(out["lines"]) == 1 and "/newer" in out["lines"][0]
    _, out, _, _ = call(root, "ops-logs", {"NGINX": True, "FOLLOW": True, "GREP": "x", "LINES": "0"})
    assert out["argv"] == ["tail", "-n", "0", "-F", "/var/log/nginx/fdeploy-shop.access.log", "/var/log/nginx/fdeploy-shop.error.log"]
    assert out["filter"] == ["grep", "--line-buffered", "-E", "-e", "x"]


def props(argv):
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]


def test_exec_in_the_sandbox_as_the_live_user(root):
    (root / "srv/shop/releases" / RID / ".venv/bin/flask").write_text("#!/bin/sh\n")
    (root / "srv/shop/releases" / RID / ".venv/bin/flask").chmod(0o755)
    (root / "etc/systemd/system/fdeploy-shop@blue.service.d").mkdir()
    (root / "etc/systemd/system/fdeploy-shop@blue.service.d/50-slot-user.conf").write_text("[Service]\nUser=shop_2\nGroup=shop\n")
    status, out, _, _ = call(root, "ops-exec", {"CMD": json.dumps(["flask", "a\nb", "$HOME", ""])})
    assert status == 0
    argv = out["argv"]
    assert argv[:6] == ["systemd-run", "--quiet", "--wait", "--collect", "--pipe", "--expand-environment=no"]
    assert argv[6].startswith("--unit=fdeploy-shop-exec-") and argv[6] != call(root, "ops-exec", {"CMD": '["/bin/true"]'})[1]["argv"][6]
    assert argv[argv.index("--") + 1:] == ["/srv/shop/releases/%s/.venv/bin/flask" % RID, "a\nb", "$HOME", ""]
    p = props(argv)
    for want in ("User=shop_2", "Group=shop", "WorkingDirectory=/srv/shop/releases/" + RID, "EnvironmentFile=/etc/fdeploy/shop/env",
                 "EnvironmentFile=/srv/shop/slots/blue.env", "ProtectSystem=strict", "ReadWritePaths=/srv/shop/shared", "NoNewPrivileges=yes"):
        assert want in p
    assert out["argvz"] == "".join(a + "\0" for a in argv)


def test_exec_without_expand_environment_doubles_dollars(root):
    _, out, _, _ = call(root, "ops-exec", {"CMD": json.dumps(["/bin/echo", "$HOME"])},
                        Fake(states={}, expand=False))
    assert "--expand-environment=no" not in out["argv"] and out["argv"][-2:] == ["/bin/echo", "$$HOME"]


@pytest.mark.parametrize("cmd", ['"ls"', "[]", '[1]', '["", "x"]', '["a\\u0000b"]', "nope"])
def test_exec_refuses_a_bad_command(root, cmd):
    status, out, _, _ = call(root, "ops-exec", {"CMD": cmd})
    assert status == 1 and "CMD" in out["error"]


def test_exec_unknown_command(root):
    status, out, _, _ = call(root, "ops-exec", {"CMD": '["no-such-command-here"]'})
    assert status == 1 and "command not found: no-such-command-here" in out["error"]


def test_exec_and_console_in_the_container(root):
    os.rmdir(root / "srv/shop/releases" / RID / ".venv/bin")
    os.rmdir(root / "srv/shop/releases" / RID / ".venv")
    fake = Fake(states={}, container=True)
    _, out, _, _ = call(root, "ops-exec", {"CMD": '["flask", "routes"]'}, fake, which=lambda c: "/usr/bin/docker")
    assert out["argv"] == ["docker", "exec", "-i", "fdeploy-shop-blue", "flask", "routes"]
    _, out, _, _ = call(root, "ops-exec", {"CONSOLE": True}, fake, which=lambda c: "/usr/bin/docker")
    assert out["argv"] == ["docker", "exec", "-it", "fdeploy-shop-blue", "python"]


def test_console_flask_shell(root):
    (root / "srv/shop/releases" / RID / ".venv/bin/flask").write_text("#!/bin/sh\n")
    (root / "srv/shop/releases" / RID / ".venv/bin/flask").chmod(0o755)
    _, out, _, _ = call(root, "ops-exec", {"CONSOLE": True})
    assert "--pty" in out["argv"] and out["argv"][-2:] == ["/srv/shop/releases/%s/.venv/bin/flask" % RID, "shell"]


def test_maintenance_on_off(root):
    (root / "etc/nginx/sites-enabled/fdeploy-shop.conf").write_text("include /etc/fdeploy/shop/maintenance.conf*;\n")
    status, out, err, host = call(root, "ops-maintenance", {"MODE": "on", "MESSAGE": "Back <soon>"})
    assert status == 0 and out["changed"] is True and "predates" not in err
    conf = (root / "etc/fdeploy/shop/maintenance.conf")
    assert oct(conf.stat().st_mode & 0o777) == "0o600" and "return 503" in conf.read_text()
    assert "alias /srv/shop/maintenance/index.html;" in conf.read_text()
    assert "Back &lt;soon&gt;" in (root / "srv/shop/maintenance/index.html").read_text()
    assert ["nginx", "-t"] in host.commands
    head = conf.read_text()
    status, out, err, _ = call(root, "ops-maintenance", {"MODE": "on", "HTML": "<p>mine</p>"})
    assert (status, out["changed"], conf.read_text()) == (0, False, head) and "already on" in err   # idempotent: the same since
    assert (root / "srv/shop/maintenance/index.html").read_text() == "<p>mine</p>"
    st = call(root, "ops-status", {})[1]
    assert st["maintenance"]["on"] is True and st["maintenance"]["by"]
    assert call(root, "ops-maintenance", {"MODE": "off"})[1]["changed"] is True and not conf.exists()
    assert call(root, "ops-maintenance", {"MODE": "off"})[1]["changed"] is False


def test_maintenance_refused_by_nginx_changes_nothing(root):
    status, out, err, _ = call(root, "ops-maintenance", {"MODE": "on"}, Fake(nginx_ok=False))
    assert status == 1 and "nginx rejects" in out["error"] and "bad thing" in err
    assert not (root / "etc/fdeploy/shop/maintenance.conf").exists()
    assert "predates maintenance mode" in err   # a site without the include
    call(root, "ops-maintenance", {"MODE": "on"})
    before = (root / "etc/fdeploy/shop/maintenance.conf").read_text()
    assert call(root, "ops-maintenance", {"MODE": "off"}, Fake(nginx_ok=False))[0] == 1
    assert (root / "etc/fdeploy/shop/maintenance.conf").read_text() == before   # still on


def test_maintenance_bad_mode(root):
    status, out, _, _ = call(root, "ops-maintenance", {"MODE": "maybe"})
    assert status == 1 and "MODE: on or off" in out["error"]


HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)"


def test_lock_status_and_release(root):
    lock = root / "run/fdeploy/shop.lock"
    lock.write_text("")
    status, out, _, _ = call(root, "ops-lock", {})
    assert (status, out["held"], out["owner"], out["processes"]) == (0, False, None, [])
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (root / "run/fdeploy/shop.lock.owner").write_text("%d 2026-12-05T06:00:00Z alice\n" % holder.pid)
        _, out, _, _ = call(root, "ops-lock", {"ACTION": "status"})
        assert out["held"] is True and out["owner"] == {"pid": holder.pid, "since": "2026-12-05T06:00:00Z", "user": "alice"}
        assert [p["pid"] for p in out["processes"]] == [holder.pid] and "time.sleep(600)" in out["processes"][0]["command"]
        assert out["processes"][0]["user"] and out["processes"][0]["started"]
        status, out, err, _ = call(root, "ops-lock", {"ACTION": "release"})
        assert (status, out["held"], out["processes"]) == (0, False, []) and "released the deploy lock" in err
        assert holder.wait(timeout=10) == -15   # SIGTERM
    finally:
        holder.kill()
    assert call(root, "ops-lock", {"ACTION": "steal"})[0] == 1
