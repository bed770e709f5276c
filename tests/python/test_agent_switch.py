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
IMG1, IMG2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
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
        self.image_ids = {}   # image name -> id (default IMG1)
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
        if argv[:3] == ["docker", "image", "inspect"]:   # --format {{.Id}} NAME: the id the tag names
            name = argv[-1]
            return Result(0, self.image_ids.get(name, IMG1) + "\n") if name in self.images else Result(1)
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
                    "var/log/nginx", "run", "home/deploy/.fdeploy/shop/scripts-0123456789ab")
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


def test_a_fleets_later_host_rolls_back_to_a_release_the_first_host_ran_and_it_never_did(server):
    deployed(server, A)   # it joined the fleet with A; B went live on the first host before
    activate(server, B, ROLLBACK=1, FLEET_PEER=1)   # the first host's history vouches for B (release_peer.py copied it)
    assert server.served() == B
    assert [(e["release"], e["strategy"], e["schema"]) for e in server.history()][-1] == (B, "rollback", None)


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


# --- rolling

def test_rolling_proves_the_release_on_a_probe_that_carries_the_traffic_while_the_live_slot_restarts(server):
    deployed(server, A, "rolling")
    assert server.live() == "main"
    sw, _ = activate(server, B, "rolling")
    assert sw.trail == ["settings-desired", "preflight", "checked-probe", "traffic-probe", "restarted-main", "checked-main", "live-main",
                        "probe-stopped", "recorded-live", "recorded"]
    assert server.served() == B and "probe" not in server.active and server.restarted() == ["probe", "main"]


def test_rolling_probe_failure_leaves_the_live_slot_untouched(server):
    deployed(server, A, "rolling")
    server.health[B] = "dead"
    sw, msg, _ = fails(server, B, "rolling")
    assert msg == "release %s failed its health check on the probe slot; the live release is untouched (flask-deploy:healthPath)" % B
    assert server.restarted() == ["probe"] and server.served() == A and "probe" not in server.active


def test_rolling_restart_failure_after_the_probe_sends_the_traffic_back_to_the_previous_release(server):
    deployed(server, A, "rolling")
    sw = switch.Switch(server.host(), params(B, "rolling"), lambda line: None, bundle="x")
    checks = iter([True, False, True])   # probe passes, the restarted live slot fails, the switched-back one passes
    sw.slots.check = lambda slot, path, timeout: next(checks)
    with pytest.raises(AgentError, match="failed its health check"):
        sw.run()
    assert "switched-back" in sw.trail and sw.trail[-3:] == ["probe-stopped", "failed", "settings-live"]
    assert server.served() == A and "probe" not in server.active


# --- blue-green

def test_blue_green_alternates_slots_and_stops_the_old_one_after_the_drain(server):
    sw = deployed(server, A, "blue-green")
    assert sw.trail[:4] == ["settings-desired", "preflight", "checked-blue", "live-blue"]
    sw, _ = activate(server, B, "blue-green")
    assert sw.trail == ["settings-desired", "preflight", "checked-green", "live-green", "stopped-blue", "recorded-live", "recorded"]
    assert server.live() == "green" and server.served() == B and server.active == {"green"}
    # the new slot runs as the other slot user than the live one
    assert "User=shop_2" in server.file("/etc/systemd/system/fdeploy-shop@green.service.d/50-slot-user.conf")


def test_blue_green_failed_check_stops_the_idle_slot_and_puts_the_live_settings_back(server):
    deployed(server, A, "blue-green")
    stage(server, module="newapp:app")
    server.health[B] = "500"
    sw, msg, _ = fails(server, B, "blue-green")
    assert msg == "release %s failed its health check on slot green; slot blue keeps serving (flask-deploy:healthPath)" % B
    assert server.active == {"blue"} and server.served() == A
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"


def test_light_preflight_is_skipped_when_the_deploys_preflight_passed_with_these_settings(server):
    deployed(server, A, "blue-green")
    state = json.loads(server.file("/etc/fdeploy/shop/state.json"))
    state["preflight"] = {"release": B, "env": None, "unit": None, "passed": True}
    (server.root / "etc/fdeploy/shop/state.json").write_text(json.dumps(state))
    activate(server, B, "blue-green")
    assert not any(c[0] == "systemd-run" for c in server.calls)


# --- runtime docker

def test_docker_restart_goes_through_a_probe_container_and_needs_the_image(server):
    server.images = {"fdeploy-shop:" + A}
    stage(server)
    sw, _ = activate(server, A, RUNTIME="docker")
    assert "traffic-probe" not in sw.trail and "checked-probe" in sw.trail and "preflight" not in sw.trail
    assert not os.path.exists(server.root / "etc/systemd/system/fdeploy-shop@main.service.d/50-slot-user.conf")
    assert ["systemctl", "disable", "--now", "--quiet", "fdeploy-shop@probe.socket"] in server.calls
    _, msg, _ = fails(server, B, RUNTIME="docker")
    assert msg.startswith("image fdeploy-shop:%s is not on this server's Docker engine" % B)


def test_docker_runs_the_image_this_hosts_build_made_else_refuses_before_anything_changes(server):
    # IMAGE_ID: the id the Docker provider recorded for this host's build; a tag moved since (another build) is refused
    server.images = {"fdeploy-shop:" + A, "fdeploy-shop:" + B}
    server.image_ids = {"fdeploy-shop:" + A: IMG1, "fdeploy-shop:" + B: IMG1}
    deployed(server, A, "blue-green", RUNTIME="docker", IMAGE_ID=IMG1)
    before = (server.active, server.served(), list(server.calls))
    sw, msg, _ = fails(server, B, "blue-green", RUNTIME="docker", IMAGE_ID=IMG2)
    assert msg.splitlines()[0] == ("image fdeploy-shop:%s is not what this deploy built here (its tag was moved); nothing changed: "
                                   "pulumi up --replace its image" % B)
    assert "the tag names %s, the build made %s" % (IMG1[:19], IMG2[:19]) in msg
    assert sw.trail == [] and server.served() == A and server.active == before[0]
    assert not any(c[:2] == ["systemctl", "restart"] for c in server.calls[len(before[2]):])
    # the id this host's build made: it switches
    server.image_ids["fdeploy-shop:" + B] = IMG2
    activate(server, B, "blue-green", RUNTIME="docker", IMAGE_ID=IMG2)
    assert server.served() == B


def test_docker_going_back_runs_the_kept_image_whatever_the_deploys_image_id(server):
    # a fleet host going back (FLEET_BACK, ROLLBACK) gets the failed deploy's parameters: IMAGE_ID names the new image
    server.images = {"fdeploy-shop:" + A, "fdeploy-shop:" + B}
    server.image_ids = {"fdeploy-shop:" + A: IMG1, "fdeploy-shop:" + B: IMG2}
    deployed(server, A, "blue-green", RUNTIME="docker", IMAGE_ID=IMG1)
    activate(server, B, "blue-green", RUNTIME="docker", IMAGE_ID=IMG2)
    activate(server, A, "blue-green", RUNTIME="docker", IMAGE_ID=IMG2, ROLLBACK=1, FLEET_BACK=1)
    assert server.served() == A
    activate(server, B, "blue-green", RUNTIME="docker", IMAGE_ID="kept:" + B, ROLLBACK=1)   # a rollback's pin
    assert server.served() == B


def test_docker_to_python_under_restart_goes_rolling_while_the_live_socket_is_the_containers_link(server):
    server.images = {"fdeploy-shop:" + A}
    deployed(server, A, RUNTIME="docker")
    (server.root / "run/fdeploy-shop/main.sock").symlink_to("/srv/shop/run/main/app.sock")   # the container's socket
    sw, _ = activate(server, B)
    assert sw.trail[:4] == ["settings-desired", "preflight", "checked-probe", "traffic-probe"]
    assert not os.path.islink(server.root / "run/fdeploy-shop/main.sock"), "the socket unit binds where the link was"
    assert server.served() == B


# --- canary

def traffic(new_status=200, seconds="0.010", n=3):
    def lines(server):
        out = []
        for slot in ("blue", "green"):
            status = new_status if server.release(slot) == B else 200
            out += ["1733390000.1\t%d\tunix:/run/fdeploy-shop/%s.sock\t%d\t%s\t%s" % (status, slot, status, seconds, seconds)] * n
        return out
    return lines


def canary_ready(server):
    deployed(server, A, "blue-green")
    server.traffic = traffic()


def test_canary_shifts_traffic_in_steps_then_goes_live_on_the_new_slot(server):
    canary_ready(server)
    logs = []
    sw, _ = activate(server, B, "canary", logs)
    assert sw.trail == ["settings-desired", "preflight", "checked-green", "canary-step-1", "canary-step-2", "live-green", "stopped-blue",
                        "recorded-live", "recorded"]
    text = "\n".join(logs)
    assert "canary step 1/2 (10 %) passed: new " in text and "canary step 2/2 (100 %) passed" in text
    assert server.file("/etc/fdeploy/shop/upstream.conf") == slotmod.default_upstream(slotmod_app())
    assert not os.path.exists(server.root / "srv/shop/slots/canary.json")
    assert server.served() == B and server.active == {"green"}
    assert server.history()[-1]["strategy"] == "canary"


def test_canary_writes_its_state_file_per_step_as_json(server):
    canary_ready(server)
    seen = []
    inner = server.traffic

    def spy(s):
        if s.file("/srv/shop/slots/canary.json"):
            seen.append(json.loads(s.file("/srv/shop/slots/canary.json")))
        return inner(s)
    server.traffic = spy
    activate(server, B, "canary")
    assert seen[0] == dict(seen[0], release=B, slot="green", step=1, steps=2, percent=10, pid=os.getpid())
    assert seen[0]["from"] == A and seen[-1]["percent"] == 100


@pytest.mark.parametrize("kind, expect", [
    ("5xx", "canary aborted at step 1/2 (10 %): the new release's 5xx share is over canary.maxErrorRate (0.1)"),
    ("slow", "canary aborted at step 1/2 (10 %): the new release's p95 is over canary.maxP95Ms (100 ms)"),
    ("dead", "canary aborted at the new release's process died at step 1/2 (10 %): its process exited"),
    ("split", "canary aborted at step 1/2 (10 %): nginx rejected the split (nginx -t above)"),
])
def test_a_tripped_canary_sends_all_traffic_back_stops_the_new_slot_and_fails(server, kind, expect):
    canary_ready(server)
    if kind == "5xx":
        server.traffic = traffic(new_status=500)
    elif kind == "slow":
        server.traffic = traffic(seconds="0.500")
    elif kind == "split":
        server.nginx_refuses_split = True
    elif kind == "dead":   # the process dies once the traffic reaches it
        server.traffic = lambda s: s.health.update({B: "dead"}) or []
    sw, msg, _ = fails(server, B, "canary", CANARY_STEP_SECONDS="60")
    assert msg.startswith(expect), msg
    assert (server.now > 60) == (kind == "slow"), "the 5xx share and a dead process trip the step early; p95 at its end"
    assert msg.split("\n")[0].endswith("all traffic is back on release %s (slot blue), the new slot is stopped, the database was not touched by the abort (see fdeploy logs)" % A)
    assert "canary-back" in sw.trail and sw.trail[-3:] == ["recorded-failed", "failed", "settings-live"]
    assert server.file("/etc/fdeploy/shop/upstream.conf") == slotmod.default_upstream(slotmod_app())
    assert server.active == {"blue"} and server.served() == A
    assert not os.path.exists(server.root / "srv/shop/slots/canary.json")
    assert server.history()[-1]["status"] == "failed"


@pytest.mark.parametrize("low, outcome", [("pass", "passes"), ("fail", "fails at once"), ("wait", "fails after waiting"),
                                           ("wait-then-traffic", "passes after waiting")])
def test_canary_low_traffic_passes_fails_or_waits(server, low, outcome):
    canary_ready(server)
    if low == "wait-then-traffic":   # the requests come after the step's time, within maxWaitSeconds
        server.traffic = lambda s: traffic(n=1)(s) if s.now > 6 else []
    else:
        server.traffic = traffic(n=0)
    kw = {"CANARY_LOW_TRAFFIC": low.split("-")[0]}
    if outcome.startswith("passes"):
        logs = []
        sw, _ = activate(server, B, "canary", logs, **kw)
        assert server.served() == B
        if low == "pass":
            assert "canary step 1/2: fewer than 2 requests on the new release; passing (canary.lowTraffic pass)" in logs
        else:
            assert server.now > 8, "the step waited past its time for the requests"
        return
    start = server.now
    sw, msg, _ = fails(server, B, "canary", **kw)
    if low == "fail":
        assert msg.startswith("canary aborted at step 1/2 (10 %): fewer than 2 requests on the new release (canary.lowTraffic fail)")
        assert server.now - start < 7
    else:
        assert msg.startswith("canary aborted at step 1/2 (10 %): fewer than 2 requests on the new release after waiting 4s more (canary.maxWaitSeconds)")
        assert server.now - start >= 8
    assert server.served() == A and server.active == {"blue"}


@pytest.mark.parametrize("why, setup", [
    ("no release is live yet", "first"),
    ("a rollback returns to a release that already ran here", "rollback"),
    ("migrations applied for this release are not marked '-- fdeploy: canary-safe': 0002_b.up.sql", "migration"),
    ("the nginx site in force does not split traffic yet", "site"),
])
def test_canary_falls_back_to_blue_green_and_says_why(server, why, setup):
    rid = B
    if setup != "first":
        canary_ready(server)
    else:
        stage(server)
        rid = A
    if setup == "rollback":
        activate(server, B, "blue-green")
        rid = A
    if setup == "migration":
        m = server.root / "srv/shop/migrations/m2"
        m.mkdir(parents=True)
        (m / "0002_b.up.sql").write_text("ALTER TABLE t ADD c;\n")
        (server.root / "srv/shop/migrations/current").symlink_to(m)
    if setup == "site":
        (server.root / "etc/nginx/sites-available/fdeploy-shop.conf").write_text("server {}\n")
    logs = []
    sw, _ = activate(server, rid, "canary", logs, **({"ROLLBACK": 1} if setup == "rollback" else {}))
    assert any(line.startswith("canary: " + why) and line.endswith("; going live blue-green instead") for line in logs), logs
    assert "canary-fallback" in sw.trail and "canary-step-1" not in sw.trail
    assert server.history()[-1]["strategy"] == ("rollback" if setup == "rollback" else "blue-green")
    assert server.served() == rid


def test_canary_settings_are_checked_before_a_canary_starts(server):
    canary_ready(server)
    _, msg, _ = fails(server, B, "canary", CANARY_STEPS="10;100")
    assert msg.startswith("the canary setting flask-deploy:canary.steps is '10;100'")
    assert server.active == {"blue"} and server.served() == A


def test_a_failing_gate_check_aborts_the_canary(server, monkeypatch):
    canary_ready(server)
    from fdeploy_agent import canary_flow

    def broken(sw, offset, mode):
        raise AgentError("the upstream log is unreadable")
    monkeypatch.setattr(canary_flow, "gate", broken)
    _, msg, _ = fails(server, B, "canary")
    assert msg.startswith("canary aborted at step 1/2 (10 %): the gate check failed (1) [the upstream log is unreadable]")
    assert server.served() == A and server.active == {"blue"}


# --- what earlier runs left

def test_an_interrupted_canary_is_undone_by_the_next_activation_of_any_strategy(server):
    canary_ready(server)
    split = "server unix:/run/fdeploy-shop/blue.sock weight=90;\nserver unix:/run/fdeploy-shop/green.sock weight=10;\n"
    (server.root / "etc/fdeploy/shop/upstream.conf").write_text(split)
    (server.root / "srv/shop/slots/canary.json").write_text(json.dumps({"slot": "green", "pid": 1}))
    server.active.add("green")
    logs = []
    sw, _ = activate(server, C, "rolling", logs)
    assert sw.trail[1:3] == ["canary-unsplit", "canary-slot-stopped"]
    assert "an interrupted canary left traffic split: all of it back to the live slot" in logs
    assert "an interrupted canary left slot green running: stopping it" in logs
    assert server.file("/etc/fdeploy/shop/upstream.conf") == slotmod.default_upstream(slotmod_app())
    assert not os.path.exists(server.root / "srv/shop/slots/canary.json")
    assert ["systemctl", "disable", "--now", "--quiet", "fdeploy-shop@green.service", "fdeploy-shop@green.socket"] in server.calls


def test_an_upstream_that_differs_only_in_its_comment_is_not_a_split(server):
    canary_ready(server)
    (server.root / "etc/fdeploy/shop/upstream.conf").write_text("# another comment\nserver unix:/run/fdeploy-shop/live.sock;\n")
    sw, _ = activate(server, B, "blue-green")
    assert "canary-unsplit" not in sw.trail


@pytest.mark.parametrize("left", ["link", "env", "unit"])
def test_the_legacy_probe_slot_canary_is_retired_once_nginx_does_not_proxy_to_it(server, left):
    deployed(server, A, "rolling")
    if left == "link":
        (server.root / "srv/shop/slots/canary").symlink_to("/srv/shop/releases/" + A)
    elif left == "env":
        (server.root / "srv/shop/slots/canary.env").write_text("RELEASE_ID=%s\n" % A)
    else:
        server.legacy_enabled = True
    logs = []
    sw, _ = activate(server, B, "rolling", logs)
    assert "legacy-probe-retired" in sw.trail
    assert "removed the slot 'canary' left by an older version's rolling strategy" in logs
    assert not os.path.lexists(server.root / "srv/shop/slots/canary") and not os.path.exists(server.root / "srv/shop/slots/canary.env")


def test_nothing_left_of_the_legacy_probe_nothing_retired(server):
    deployed(server, A, "rolling")
    sw, _ = activate(server, B, "rolling")
    assert "legacy-probe-retired" not in sw.trail


def test_a_stop_signal_mid_switch_puts_the_live_settings_back(server):
    deployed(server, A, "blue-green")
    stage(server, module="newapp:app")
    sw = switch.Switch(server.host(), params(B, "blue-green"), lambda line: None, bundle="x")

    def killed(slot, path, timeout):
        switch._stopped(signal.SIGTERM, None)
    sw.slots.check = killed
    with pytest.raises(AgentError, match="stopped by signal 15"):
        sw.run()
    assert sw.trail[-2:] == ["failed", "settings-live"]
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"


def test_the_verb_takes_the_deploy_lock_with_the_deploys_lease_and_prints_the_history(server, monkeypatch):
    stage(server)
    seen = []
    real = switch.deploy_lock

    def spy(host, app, wait, log, deploy=""):
        seen.append((app, deploy))
        return real(host, app, wait, log, deploy=deploy)
    monkeypatch.setattr(switch, "deploy_lock", spy)
    bundle = str(server.root / "home/deploy/.fdeploy/shop/scripts-0123456789ab")
    monkeypatch.setitem(cli.VERBS, "activate", lambda h, p, log, lw: switch.activate(h, p, log, lw, bundle=bundle))
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["activate"], stdin=io.StringIO(json.dumps(params(A, DEPLOY="proj/dev"))), stdout=out, stderr=err, host=server.host())
    assert rc == 0, err.getvalue()
    result = json.loads(out.getvalue())
    assert result["ok"] and result["history"][-1]["releaseId"] == A and seen == [("shop", "proj/dev")]
    assert json.loads(server.file("/run/fdeploy/shop.lease"))["deploy"] == "proj/dev"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_slot_whose_start_fails_outright_is_checked_and_switched_back_like_one_that_exits(server):
    deployed(server, A)
    server.health[B] = "dead"
    real = server.run

    def run(argv, merge_output=False, input=None):
        if list(argv[:2]) == ["systemctl", "restart"] and server.release(server.slot(argv[2])) == B:
            server.calls.append(list(argv))
            return Result(1, "Job for fdeploy-shop@main.service failed because the control process exited with error code.")
        return real(argv, merge_output, input)
    server.run = run
    sw, msg, logs = fails(server, B)
    assert "systemctl restart fdeploy-shop@main.service failed: Job for" in logs
    assert "switched-back" in sw.trail and server.served() == A and "main" in server.active


# --- a fleet's way back (settings_back.py)

def test_a_host_a_fleet_sends_back_runs_its_old_release_with_the_env_and_unit_it_ran_with(server):
    deployed(server, A)
    stage(server, module="newapp:app", env="GREETING=new\n")
    activate(server, B)   # this host switched; a later host of the fleet failed
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=new\n"
    logs = []
    activate(server, A, "restart", logs, ROLLBACK=1, FLEET_BACK=1)
    assert server.served() == A
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=hi\n"
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == "[Service]\nExecStart=gunicorn app:app\n"
    assert server.file("/etc/fdeploy/shop/env.live") == "GREETING=hi\n"
    assert "going back to %s with the units and environment it ran with" % A in "\n".join(logs)
    # the next up switches it forward again with the staged settings, and could send it back again
    activate(server, B)
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=new\n"
    activate(server, A, ROLLBACK=1, FLEET_BACK=1)
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=hi\n"


def test_a_rollback_without_fleet_back_keeps_the_staged_settings(server):
    deployed(server, A)
    stage(server, module="newapp:app", env="GREETING=new\n")
    activate(server, B)
    activate(server, A, ROLLBACK=1)
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=new\n"


def test_fleet_back_to_a_release_whose_settings_are_not_kept_says_so_and_uses_the_staged_ones(server):
    deployed(server, A)
    activate(server, B)
    stage(server, module="newapp:app", env="GREETING=new\n")
    activate(server, C)
    logs = []
    activate(server, A, "restart", logs, ROLLBACK=1, FLEET_BACK=1)   # the kept ones are B's, from before C
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=new\n"
    assert "are not kept here" in "\n".join(logs)


def test_a_crash_while_the_previous_settings_change_leaves_no_tag_naming_other_copies(server, monkeypatch):
    from fdeploy_agent import settings_back
    deployed(server, A)
    stage(server, env="GREETING=new\n")
    activate(server, B)
    writes = []

    def crash(path, data, mode):
        writes.append(path)
        raise OSError("disk gone")
    monkeypatch.setattr(settings_back, "write_atomic", crash)
    with pytest.raises(OSError):
        settings_back.remember(server.host(), slotmod_app(), B, C)
    assert not (server.root / "etc/fdeploy/shop/previous.json").exists()
    assert not settings_back.usable(server.host(), slotmod_app(), A, B)
