"""The switch (agent switch.py, canary_flow.py, slots.py) on a temporary server root: systemctl,
nginx, docker, the preflight's systemd-run, the slot check's curl and the clock are a fake server at
the Host seam, whose slots answer by the release they run. Each strategy's states, each failure and
what stays in force after it."""
import io
import json
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, slots as slotmod, switch  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

A, B, C = "a" * 12, "b" * 12, "c" * 12
UIDS = {"shop": 1000, "shop_1": 1001, "shop_2": 1002, "www-data": 33}
CANARY = {"CANARY_STEPS": "10,100", "CANARY_STEP_SECONDS": "4", "CANARY_MIN_REQUESTS": "2", "CANARY_MAX_WAIT_SECONDS": "4",
          "CANARY_MAX_P95_MS": "100", "CANARY_MAX_ERROR_RATE": "0.1", "CANARY_LOW_TRAFFIC": "wait"}
SITE = "upstream x {\n  include /etc/fdeploy/shop/upstream.conf;\n}\n"


class Result:
    def __init__(self, rc=0, out=""):
        self.returncode, self.stdout, self.stderr = rc, out, ""


class Probe:
    def __init__(self, code):
        self.code = code

    def poll(self):
        return 0

    def stop(self):
        pass

    def output(self):
        return ("ok\n" if self.code != "000" else "curl: (7) Couldn't connect\n").encode() + self.code.encode()


class Server:
    """What the switch sees of a server. health: release -> "200" | "500" | "dead" (its process exits)."""

    def __init__(self, root):
        self.root = root
        self.health = {}
        self.active = set()
        self.now = 0.0
        self.nginx_refuses_split = False
        self.preflight = (0, "GET /health: HTTP 200\n")
        self.images = set()
        self.legacy_enabled = False
        self.traffic = None   # called on each sleep: (server) -> upstream log lines to append
        self.calls = []

    def slot(self, unit):
        return unit.split("@", 1)[1].rsplit(".", 1)[0]

    def release(self, slot):
        p = self.root / ("srv/shop/slots/" + slot)
        return os.path.basename(os.readlink(p)) if os.path.islink(p) else ""

    def running(self, slot):
        return slot in self.active and self.health.get(self.release(slot), "200") != "dead"

    def run(self, argv, merge_output=False, input=None):
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["systemctl", "show"]:
            unit = argv[-1] if argv[2] == "-p" else argv[2]
            slot = self.slot(unit)
            if argv[2] == "-p":   # -p MainPID --value UNIT
                return Result(0, "100\n" if self.running(slot) else "0\n")
            if self.running(slot):
                return Result(0, "ActiveState=active\nSubState=running\nMainPID=100\nExecMainCode=0\nExecMainStatus=0\n")
            return Result(0, "ActiveState=failed\nSubState=failed\nMainPID=0\nExecMainCode=1\nExecMainStatus=3\n")
        if argv[:2] == ["systemctl", "restart"]:
            self.active.add(self.slot(argv[2]))
            return Result()
        if argv[:2] == ["systemctl", "disable"]:
            for u in argv[4:]:
                self.active.discard(self.slot(u))
            return Result()
        if argv[:3] == ["systemctl", "is-active", "--quiet"]:
            return Result(0 if self.running(self.slot(argv[3])) else 3)
        if argv[:3] == ["systemctl", "is-enabled", "--quiet"]:
            return Result(0 if self.legacy_enabled else 1)
        if argv[:2] == ["systemctl", "is-enabled"]:
            return Result(0, "enabled\nenabled\n")
        if argv[0] == "nginx":
            split = b"weight" in (self.root / "etc/fdeploy/shop/upstream.conf").read_bytes()
            return Result(1, "nginx: [emerg] no such socket") if split and self.nginx_refuses_split else Result()
        if argv[:3] == ["docker", "image", "inspect"]:
            return Result(0 if argv[3] in self.images else 1)
        if argv[0] == "systemd-run":
            return Result(*self.preflight)
        return Result()   # systemctl enable/reload/daemon-reload, journalctl, runuser

    def spawn(self, argv):
        self.calls.append(list(argv))
        sock = argv[argv.index("--unix-socket") + 1]
        slot = os.path.basename(sock)[:-5]
        if not self.running(slot):
            return Probe("000")
        return Probe(self.health.get(self.release(slot), "200"))

    def sleep(self, seconds):
        self.now += seconds
        if self.traffic:
            with open(self.root / "var/log/nginx/fdeploy-shop.upstream.log", "a") as f:
                f.writelines(x + "\n" for x in self.traffic(self))

    def host(self):
        return Host(root=str(self.root), run=self.run, spawn=self.spawn, user_ids=lambda n: (UIDS[n], 1000),
                    kill_user=lambda uid, gid: None, clock=lambda: self.now, sleep=self.sleep)

    # --- what a test reads

    def file(self, path):
        p = self.root / path.lstrip("/")
        return p.read_text() if p.exists() else None

    def live(self):
        return (self.file("/srv/shop/slots/live") or "").strip()

    def served(self):
        """The release nginx reaches through the live link now."""
        target = os.readlink(self.root / "run/fdeploy-shop/live.sock")
        return self.release(os.path.basename(target)[:-5])

    def history(self):
        return [json.loads(x) for x in (self.file("/srv/shop/history.jsonl") or "").splitlines()]

    def restarted(self):
        return [self.slot(c[2]) for c in self.calls if c[:2] == ["systemctl", "restart"]]


@pytest.fixture
def server(tmp_path):
    root = app_root(tmp_path, "srv/shop/releases", "srv/shop/shared", "etc/nginx/sites-available", "etc/nginx/sites-enabled",
                    "var/log/nginx", "home/deploy/.fdeploy/shop/scripts-0123456789ab")
    os.makedirs(root / "etc/fdeploy/shop", 0o700)
    for rid in (A, B, C):
        install(root, rid)
    site = root / "etc/nginx/sites-available/fdeploy-shop.conf"
    site.write_text(SITE)
    (root / "etc/nginx/sites-enabled/fdeploy-shop.conf").symlink_to(site)
    (root / "etc/fdeploy/shop/upstream.conf").write_text(slotmod.default_upstream(slotmod_app()))
    return Server(root)


def slotmod_app():
    from fdeploy_agent.app import App
    return App(name="shop", root="/srv/shop", user="shop")


def install(root, rid):
    (root / "srv/shop/releases" / rid).mkdir(parents=True, exist_ok=True)
    (root / "srv/shop/releases" / rid / ".fdeploy-release.json").write_text("{}")


def stage(server, module="app:app", env="GREETING=hi\n"):
    d = server.root / "etc/fdeploy/shop"
    (d / "service.desired").write_text("[Service]\nExecStart=gunicorn %s\n" % module)
    (d / "socket.desired").write_text("[Socket]\n")
    (d / "env.desired").write_text(env)


def params(rid, strategy="restart", **kw):
    p = {"APP": "shop", "RELEASE_ID": rid, "STRATEGY": strategy, "HEALTH_PATH": "/health", "HEALTH_TIMEOUT": 5, "KEEP_RELEASES": 5,
         "APP_MODULE": "app:app"}
    if strategy == "canary":
        p.update(CANARY)
    p.update(kw)
    return p


def activate(server, rid, strategy="restart", logs=None, **kw):
    log = (logs.append if logs is not None else (lambda line: None))
    sw = switch.Switch(server.host(), params(rid, strategy, **kw), log, bundle=str(server.root / "home/deploy/.fdeploy/shop/scripts-0123456789ab"))
    try:
        return sw, sw.run()
    except AgentError as e:
        e.switch = sw
        raise


def fails(server, rid, strategy="restart", **kw):
    logs = []
    with pytest.raises(AgentError) as e:
        activate(server, rid, strategy, logs, **kw)
    return e.value.switch, str(e.value), "\n".join(logs)


def deployed(server, rid=A, strategy="restart", **kw):
    """RID live with settings module app:app (the first deploy)."""
    stage(server)
    sw, result = activate(server, rid, strategy, **kw)
    server.calls.clear()
    return sw


# --- restart

def test_a_first_restart_deploy_preflights_starts_checks_and_goes_live_on_main(server):
    stage(server)
    sw, result = activate(server, A)
    assert sw.trail == ["settings-desired", "preflight", "restarted-main", "checked-main", "live-main", "recorded-live", "recorded"]
    assert server.live() == "main" and server.served() == A
    assert os.readlink(server.root / "srv/shop/current") == "/srv/shop/releases/" + A
    assert [(e["release"], e["status"], e["strategy"]) for e in server.history()] == [(A, "live", "restart")]
    assert result["history"][-1]["releaseId"] == A
    # the settings went in force and are the live ones now
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"
    assert server.file("/etc/fdeploy/shop/service.live") == server.file("/etc/fdeploy/shop/service.desired")
    assert oct(os.stat(server.root / "etc/fdeploy/shop/env").st_mode & 0o777) == "0o600"
    assert json.loads(server.file("/srv/shop/slots/activation.live.json"))["RELEASE_ID"] == A
    assert "L+ /run/fdeploy-shop/live.sock - - - - /run/fdeploy-shop/main.sock" in server.file("/etc/tmpfiles.d/fdeploy-shop.conf")
    assert server.file("/srv/shop/slots/main.env").startswith("RELEASE_ID=%s\n" % A)


def test_restart_that_fails_its_check_switches_back_to_the_previous_release_with_its_settings(server):
    deployed(server, A)
    stage(server, module="newapp:app", env="GREETING=new\n")
    server.health[B] = "500"
    sw, msg, logs = fails(server, B)
    assert msg.startswith("release %s failed its health check (flask-deploy:healthPath); it is not live" % B)
    assert sw.trail == ["settings-desired", "preflight", "restarted-main", "recorded-failed", "switched-back", "failed", "settings-live"]
    assert server.served() == A and server.restarted() == ["main", "main"]
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=hi\n"
    assert [e["status"] for e in server.history()] == ["live", "failed"]
    assert "switching back to the previous release %s and its settings" % A in logs
    # the slot runs as the user the live release ran as
    assert "User=shop_1" in server.file("/etc/systemd/system/fdeploy-shop@main.service.d/50-slot-user.conf")
    # the next up with the same inputs fails the same way
    _, again, _ = fails(server, B)
    assert again == msg


def test_restart_falls_back_to_the_last_healthy_release_not_a_failed_one(server):
    deployed(server, A)
    server.health[B] = "dead"
    fails(server, B)
    server.health[C] = "500"
    fails(server, C)
    assert server.served() == A


def test_restart_preflight_failure_changes_nothing_in_force(server):
    deployed(server, A)
    stage(server, module="broken:app")
    server.preflight = (1, "Traceback\nModuleNotFoundError: No module named 'broken'\n")
    sw, msg, logs = fails(server, B)
    assert "does not load (flask-deploy:appModule app:app): ModuleNotFoundError" in msg
    assert sw.trail == ["settings-desired", "preflight", "recorded-failed", "failed", "settings-live"]
    assert server.restarted() == [] and server.served() == A
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"
    assert "preflight: release %s failed after 0s" % B in logs


def test_a_release_that_is_not_installed_or_a_rollback_to_one_never_live_changes_nothing(server):
    deployed(server, A)
    stage(server, module="other:app")
    _, msg, _ = fails(server, "d" * 12)
    assert msg == "release %s is not installed on this server (pulumi up installs it)" % ("d" * 12)
    _, msg, _ = fails(server, B, ROLLBACK=1)
    assert msg.startswith("release %s never went live on this server" % B)
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"
    assert server.calls == [] or all(c[:2] != ["systemctl", "restart"] for c in server.calls)


@pytest.mark.parametrize("key, value, words", [
    ("RELEASE_ID", "xyz", "bad release id"), ("HEALTH_PATH", "health", "bad health path"), ("HEALTH_TIMEOUT", "5s", "bad timeout"),
    ("STRATEGY", "big-bang", "unknown strategy"), ("RUNTIME", "podman", "bad runtime")])
def test_bad_parameters_are_refused_before_anything(server, key, value, words):
    with pytest.raises(AgentError, match=words):
        switch.Switch(server.host(), params(A, **{key: value}), lambda line: None)
    assert server.calls == []


def test_a_rollback_is_recorded_as_one_with_the_schema_it_ran_with(server):
    deployed(server, A)
    activate(server, B)
    activate(server, A, ROLLBACK=1)
    assert [(e["release"], e["strategy"]) for e in server.history()] == [(A, "restart"), (B, "restart"), (A, "rollback")]
    assert server.served() == A
