"""The server agent's staging verbs (env-stage, unit-stage) without a server: a temporary folder
stands for /, fakes for the users and commands. What a deploy relies on: staging never changes
what is in force (the switch does), revisions follow the content without revealing it, bad input
is refused naming the setting, and the deploy lock names its real holder."""
import fcntl
import hashlib
import io
import json
import os
import pwd
import stat
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, lock, state  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

APP = "shop"


@pytest.fixture
def host(tmp_path):
    app_root(tmp_path, "srv/shop", "run")
    return Host(root=str(tmp_path), run=lambda argv: pytest.fail("staging runs no command: %r" % (argv,)),
                user_ids=lambda name: (1001, 1002), which=lambda c: "/usr/bin/" + c)


def agent(host, verb, params, *extra):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb, *extra], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    return rc, out.getvalue(), err.getvalue()


def result(host, verb, params):
    rc, out, err = agent(host, verb, params)
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 1, "one JSON result line"
    return json.loads(out)


UNIT = {"APP": APP, "WORKERS": 3, "APP_MODULE": "wsgi:app", "TIMEOUT": 60}


def test_env_stage_stages_only(host, tmp_path):
    r = result(host, "env-stage", {"APP": APP, "ENV": 'SECRET_KEY="s3cret"\n'})
    assert r["ok"] and r["changed"]
    staged = tmp_path / "etc/fdeploy/shop/env.desired"
    assert staged.read_text() == 'SECRET_KEY="s3cret"\n'
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "etc/fdeploy/shop").stat().st_mode) == 0o700
    assert not (tmp_path / "etc/fdeploy/shop/env").exists(), "the file in force is the switch's to write"


def test_env_revision_follows_content_but_is_no_hash_of_it(host):
    env = 'SECRET_KEY="s3cret"\n'
    first = result(host, "env-stage", {"APP": APP, "ENV": env})
    again = result(host, "env-stage", {"APP": APP, "ENV": env})
    assert again["revision"] == first["revision"] and not again["changed"]
    other = result(host, "env-stage", {"APP": APP, "ENV": 'SECRET_KEY="other"\n'})
    assert other["revision"] != first["revision"] and other["changed"]
    assert first["revision"] not in hashlib.sha256(env.encode()).hexdigest()


def test_unit_stage_writes_desired_units_and_touches_nothing_in_force(host, tmp_path):
    (tmp_path / "etc/systemd/system/fdeploy-shop@.service").write_text("the unit in force\n")
    r = result(host, "unit-stage", dict(UNIT, APP_MODULE="pkg.app:create_app('prod', debug=False)"))
    assert r["changed"]
    service = (tmp_path / "etc/fdeploy/shop/service.desired").read_text()
    socket = (tmp_path / "etc/fdeploy/shop/socket.desired").read_text()
    assert (tmp_path / "etc/systemd/system/fdeploy-shop@.service").read_text() == "the unit in force\n"
    assert not (tmp_path / "etc/systemd/system/fdeploy-shop@.socket").exists()
    assert "ExecStart=/srv/shop/slots/%i/.venv/bin/gunicorn --workers 3 --timeout 60 " in service
    assert service.rstrip().endswith("WantedBy=multi-user.target")
    assert "\"pkg.app:create_app('prod', debug=False)\"" in service, "a factory with arguments is one quoted word"
    assert "ReadWritePaths=/srv/shop/shared" in service and "User=shop" in service
    assert "ListenStream=/run/fdeploy-shop/%i.sock" in socket and "SocketUser=shop" in socket
    assert (tmp_path / "srv/shop/slots").is_dir()
    assert not result(host, "unit-stage", dict(UNIT, APP_MODULE="pkg.app:create_app('prod', debug=False)"))["changed"]


def test_unit_revision_changes_with_any_unit_setting(host):
    revs = {result(host, "unit-stage", dict(UNIT, **change))["revision"]
            for change in ({}, {"WORKERS": 4}, {"TIMEOUT": 30}, {"APP_MODULE": "app:app"})}
    assert len(revs) == 4


def test_docker_unit(host, tmp_path):
    result(host, "unit-stage", dict(UNIT, RUNTIME="docker", ENV_NAMES="SECRET_KEY DATABASE_PATH", SHARED_DIRS="instance",
                                    MEMORY="512m", CPUS="1.5"))
    service = (tmp_path / "etc/fdeploy/shop/service.desired").read_text()
    assert "--user 1001:1002 --read-only" in service and "--cap-drop ALL" in service
    assert "-e SECRET_KEY -e DATABASE_PATH" in service
    assert "--mount type=bind,source=/run/fdeploy-mnt/shop/%i/dir0,target=/app/instance" in service
    assert "--memory 512m --cpus 1.5" in service and "fdeploy-shop:${RELEASE_ID}" in service


PIN = "/etc/fdeploy/shop.pg-root.crt"
PIN_MOUNT = "--mount type=bind,source=%s,target=%s,readonly" % (PIN, PIN)


def test_docker_unit_mounts_the_pinned_ca_file_the_stack_names(host, tmp_path):
    """database.url -> a managed server: ENV_NAMES stay the same, PG_PIN is what changes the step's inputs;
    the mount follows PG_PIN, not what happens to be on disk when the unit is staged."""
    docker = dict(UNIT, RUNTIME="docker", ENV_NAMES="DATABASE_URL", SHARED_DIRS="")
    service = tmp_path / "etc/fdeploy/shop/service.desired"
    before = result(host, "unit-stage", docker)["revision"]
    assert PIN_MOUNT not in service.read_text()
    (tmp_path / PIN.lstrip("/")).write_text("-----BEGIN CERTIFICATE-----\n")   # pg-pin wrote it (the unit waits for it)
    assert result(host, "unit-stage", dict(docker, PG_PIN=PIN))["revision"] != before
    assert PIN_MOUNT in service.read_text()
    # the stack stops pinning (back to a url): the stale file on disk is no longer mounted
    assert result(host, "unit-stage", docker)["revision"] == before
    assert PIN_MOUNT not in service.read_text()


def test_a_pin_the_step_names_but_the_server_lacks_is_refused(host, tmp_path):
    rc, out, _ = agent(host, "unit-stage", dict(UNIT, RUNTIME="docker", ENV_NAMES="DATABASE_URL", PG_PIN=PIN))
    assert rc == 1 and "%s is missing" % PIN in json.loads(out)["error"]
    rc, out, _ = agent(host, "unit-stage", dict(UNIT, RUNTIME="docker", ENV_NAMES="DATABASE_URL", PG_PIN="/etc/shadow"))
    assert rc == 1 and "bad PG_PIN '/etc/shadow': expected %s" % PIN in json.loads(out)["error"]
    assert not (tmp_path / "etc/fdeploy/shop/service.desired").exists()


@pytest.mark.parametrize("change, setting", [
    ({"APP": "Bad_Name"}, "flask-deploy:appName"),
    ({"WORKERS": "2; rm -rf /"}, "flask-deploy:workers"),
    ({"TIMEOUT": "x"}, "flask-deploy:proxyTimeoutSeconds"),
    ({"APP_MODULE": "wsgi:__import__('os').system('id')"}, "flask-deploy:appModule"),
    ({"RUNTIME": "podman"}, "flask-deploy:runtime"),
    ({"RUNTIME": "docker", "MEMORY": "lots"}, "flask-deploy:docker.memory"),
    ({"RUNTIME": "docker", "ENV_NAMES": "ok bad-name"}, "flask-deploy:env"),
])
def test_bad_input_is_refused_naming_the_setting(host, tmp_path, change, setting):
    rc, out, err = agent(host, "unit-stage", dict(UNIT, **change))
    assert rc == 1 and setting in json.loads(out)["error"] and err.startswith("error: ")
    assert not (tmp_path / "etc/fdeploy/shop/service.desired").exists()


def test_no_base_system_yet(host, tmp_path):
    (tmp_path / "etc/fdeploy/shop.conf").unlink()
    rc, out, _ = agent(host, "env-stage", {"APP": APP, "ENV": ""})
    assert rc == 1 and "no base system" in json.loads(out)["error"]


def test_bad_stdin_and_unknown_verb(host):
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["env-stage"], stdin=io.StringIO("not json"), stdout=out, stderr=err, host=host) == 1
    assert "expected one JSON object" in json.loads(out.getvalue())["error"]
    assert cli.main(["no-such-verb"], stdin=io.StringIO("{}"), stdout=io.StringIO(), stderr=err, host=host) == 2


def test_a_held_lock_names_its_real_holder(host, tmp_path):
    path = tmp_path / "run/fdeploy/shop.lock"
    path.mkdir(mode=0o700, parents=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        waits = []
        with pytest.raises(AgentError, match=r"another deploy of 'shop'.*held by pid %d \(user %s: " % (os.getpid(), pwd.getpwuid(os.getuid()).pw_name)):
            with lock.deploy_lock(host, APP, 4, log=lambda _: None, sleep=waits.append):
                pass
        assert waits == [2, 2], "waited the bound the user set, then failed"
    finally:
        os.close(fd)
    with lock.deploy_lock(host, APP, 0, log=lambda _: None):
        pass


def test_the_lock_is_never_inherited(host, tmp_path):
    with lock.deploy_lock(host, APP, 0, log=lambda _: None):
        fds = os.listdir("/proc/self/fd")
        held = [int(f) for f in fds if os.path.realpath("/proc/self/fd/" + f) == str(tmp_path / "run/fdeploy/shop.lock")]
        assert held and all(fcntl.fcntl(f, fcntl.F_GETFD) & fcntl.FD_CLOEXEC for f in held)


def test_state_file_schema(host, tmp_path):
    result(host, "env-stage", {"APP": APP, "ENV": "A=1\n"})
    f = tmp_path / "etc/fdeploy/shop/state.json"
    data = json.loads(f.read_text())
    assert data["schema"] == state.SCHEMA and "env" in data["staged"]
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    f.write_text(json.dumps(dict(data, schema=state.SCHEMA + 1)))
    rc, out, _ = agent(host, "env-stage", {"APP": APP, "ENV": "A=1\n"})
    assert rc == 1 and "newer than this flask-deploy" in json.loads(out)["error"]
    f.write_text("{")
    rc, out, _ = agent(host, "env-stage", {"APP": APP, "ENV": "A=1\n"})
    assert rc == 1 and "damaged" in json.loads(out)["error"]


def test_a_planted_symlink_is_never_written_through(host, tmp_path):
    (tmp_path / "etc/fdeploy/shop").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    (tmp_path / "etc/fdeploy/shop/env.desired").symlink_to(victim)
    result(host, "env-stage", {"APP": APP, "ENV": "A=1\n"})
    assert victim.read_text() == "root's file\n"
    assert not (tmp_path / "etc/fdeploy/shop/env.desired").is_symlink()


def test_state_dir_planted_as_symlink_is_refused(host, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "etc/fdeploy/shop").symlink_to(tmp_path / "elsewhere")
    rc, out, _ = agent(host, "env-stage", {"APP": APP, "ENV": "A=1\n"})
    assert rc == 1 and "not a root-owned folder" in json.loads(out)["error"]
    assert os.listdir(tmp_path / "elsewhere") == []


def test_app_paths():
    app = App(name="shop", root="/srv/shop", user="shop")
    assert app.unit_path("socket") == "/etc/systemd/system/fdeploy-shop@.socket"


def test_the_holder_names_every_process_that_holds_the_lock_also_an_inherited_descriptor(host, tmp_path):
    import subprocess
    (tmp_path / "run/fdeploy").mkdir(mode=0o700)
    path = tmp_path / "run/fdeploy/shop.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    child = subprocess.Popen(["sleep", "30"], pass_fds=(fd,))
    try:
        said = lock.holder(str(path))
        assert "pid %d (user " % os.getpid() in said and "pid %d (user " % child.pid in said and "sleep 30" in said
    finally:
        child.kill()
        child.wait()
        os.close(fd)
    assert lock.holder(str(path)).startswith("no process any more")


def test_a_bug_is_reported_as_one_json_result_with_its_traceback(host, tmp_path):
    rc, out, err = agent(host, "env-stage", {"APP": APP, "ENV": 5})
    assert rc == 1 and "ENV must be" in json.loads(out)["error"] and "Traceback" not in err
    broken = Host(root=str(tmp_path), run=lambda argv, merge_output=False: 1 / 0)
    rc, out, err = agent(broken, "state-report", {"APP": APP})
    assert rc == 1 and json.loads(out)["error"].startswith("the server agent failed in state-report: ZeroDivisionError")
    assert "Traceback" in err
