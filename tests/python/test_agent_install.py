"""release-install (install.py): an upload copied root-owned, its venv built by the build user in a
transient unit (venv_build.py), the half-installed marker and every failure's cleanup; the unit
stopped with the step (transient.py)."""
import io
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import base, cli, install, release, transient, venv_build  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

VV = "Python 3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]\n"
BUILDER = base.build_user("shop")


class Fake:
    """The server's commands: python3 -VV, systemctl, and systemd-run building the venv as
    venv_build.py would (BUILD: "ok", "fail", "nomark" (stopped from outside: exit 0, no marker),
    "nogunicorn")."""
    def __init__(self, root, build="ok", state="running"):
        self.root, self.build, self.state, self.calls, self.inputs = root, build, state, [], []

    def run(self, argv, merge_output=False, input=None):
        self.calls.append(list(argv))
        if argv[:2] == ["python3", "-VV"]:
            return subprocess.CompletedProcess(argv, 0, VV, "")
        if argv[:2] == ["systemctl", "is-system-running"]:
            return subprocess.CompletedProcess(argv, 0, self.state + "\n", "")
        if argv[0] == "systemd-run":
            self.inputs.append(input)
            cmd = argv[argv.index("--") + 1:]
            mode, venv, pipvenv = cmd[4], cmd[5], cmd[6]
            target = str(self.root) + (pipvenv if mode == "pip" else venv)
            if self.build == "fail" and mode == "venv":
                return subprocess.CompletedProcess(argv, 1, "ERROR: No matching distribution found for flask==99\n", "")
            if mode == "venv" and self.build != "nogunicorn":
                os.makedirs(target + "/bin", exist_ok=True)
                with open(target + "/bin/gunicorn", "w") as f:
                    f.write("#!/bin/sh\n")
                os.chmod(target + "/bin/gunicorn", 0o755)
            if self.build != "nomark":
                open(target + "/.fdeploy-built", "w").close()
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def host(self):
        return Host(root=str(self.root), run=self.run, user_ids=lambda n: (os.geteuid(), os.getegid()),
                    passwd=lambda n: (1234, "", "/nonexistent") if n == BUILDER else None,
                    which=lambda c: None, kill_user=lambda uid, gid: None)

    def builds(self):
        return [c for c in self.calls if c[0] == "systemd-run"]


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = app_root(tmp_path / "server", "srv/shop/releases", "srv/shop/shared", "run")
    monkeypatch.setattr(install, "uploads", lambda: str(tmp_path / "uploads"))
    return r


def upload(root, files=None):
    """An upload in the SSH user's folder; its id (the hash of its files)."""
    files = files or {"requirements.txt": "flask==3.0.0\ngunicorn==22.0.0\n", "wsgi.py": "app = None\n", "static/a.css": "a{}\n"}
    tmp = root.parent / "uploads" / "tmp"
    for name, text in files.items():
        os.makedirs(os.path.dirname(str(tmp / name)), exist_ok=True)
        (tmp / name).write_text(text)
    rid = release.tree_hash(str(tmp))
    os.rename(str(tmp), str(root.parent / "uploads" / rid))
    return rid


def verb(fake, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["release-install"], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host())
    return rc, json.loads(out.getvalue()), err.getvalue()


def test_an_upload_is_installed_root_owned_with_a_venv_built_by_the_build_user(root):
    rid = upload(root)
    fake = Fake(root)
    rc, out, err = verb(fake, {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0, err
    dest = root / "srv/shop/releases" / rid
    venv = "/srv/shop/venvs/" + release.venv_key(b"flask==3.0.0\ngunicorn==22.0.0\n", VV)
    assert out["action"] == "copy" and out["venv"] == venv
    assert os.readlink(str(dest / ".venv")) == venv and (dest / "static/a.css").read_text() == "a{}\n"
    assert json.loads((dest / release.MARKER).read_text())["id"] == rid
    # the app's pip first (once), then the venv: each as the build user, able to write only its folder
    pip, build = fake.builds()
    for argv, writable in ((pip, "/srv/shop/venvs/.pip"), (build, venv)):
        assert "User=" + BUILDER in argv and "Group=" + BUILDER in argv and "ReadWritePaths=" + writable in argv
        assert "ProtectSystem=strict" in argv and "NoNewPrivileges=yes" in argv and "WorkingDirectory=/srv/shop/releases/" + rid in argv
        assert argv[argv.index("--") + 1:argv.index("--") + 5] == ["python3", "-I", "-B", "-"]
    assert pip[-4:] == ["pip", venv, "/srv/shop/venvs/.pip", "-"] and build[-4:] == ["venv", venv, "/srv/shop/venvs/.pip", "-"]
    assert all("def main" in i for i in fake.inputs)   # the program on stdin: the build user cannot read the bundle
    assert "release %s installed in" % rid in err
    # a build unit a deploy killed outright left running is stopped before the venv is rebuilt
    stop = fake.calls.index(["systemctl", "stop", "fdeploy-shop-build-*"])
    assert stop < fake.calls.index(build)
    # installed: the next run does nothing, without the lock
    fake = Fake(root)
    rc, out, _ = verb(fake, {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0 and out["action"] == "installed" and fake.builds() == []


def test_a_release_with_the_same_requirements_shares_the_built_venv(root):
    verb(Fake(root), {"APP": "shop", "RELEASE_ID": upload(root)})
    rid = upload(root, {"requirements.txt": "flask==3.0.0\ngunicorn==22.0.0\n", "wsgi.py": "app = 2\n"})
    fake = Fake(root)
    rc, out, err = verb(fake, {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0, err
    assert fake.builds() == [] and "is built already" in err


def test_the_files_are_root_owned_not_group_or_world_writable_and_lose_set_id_bits(root):
    rid = upload(root, {"requirements.txt": "gunicorn\n", "run.sh": "#!/bin/sh\n", "data.txt": "x"})
    src = root.parent / "uploads" / rid
    os.chmod(str(src / "run.sh"), 0o6777)
    os.chmod(str(src / "data.txt"), 0o600)
    assert verb(Fake(root), {"APP": "shop", "RELEASE_ID": rid})[0] == 0
    dest = root / "srv/shop/releases" / rid
    assert stat.S_IMODE(os.stat(str(dest / "run.sh")).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(str(dest / "data.txt")).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o755


def test_a_changed_upload_is_refused_and_nothing_is_left(root):
    rid = upload(root)
    (root.parent / "uploads" / rid / "wsgi.py").write_text("changed meanwhile")
    fake = Fake(root)
    rc, out, _ = verb(fake, {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 1 and "the upload of release %s is incomplete or changed" % rid in out["error"]
    assert not (root / "srv/shop/releases" / rid).exists() and fake.builds() == []


@pytest.mark.parametrize("build,state,message", [
    ("fail", "running", "pip install -r requirements.txt failed for release"),
    ("fail", "stopping", "was interrupted before it finished (is the server shutting down?)"),
    ("nomark", "running", "was interrupted before it finished"),
    ("nogunicorn", "running", "gunicorn is not installed by requirements.txt"),
])
def test_a_failed_build_removes_the_half_installed_release_and_venv(root, build, state, message):
    rid = upload(root)
    rc, out, err = verb(Fake(root, build=build, state=state), {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 1 and message in out["error"], err
    assert not (root / "srv/shop/releases" / rid).exists()
    # the app's pip stays (built), and a venv that was built (it lacks gunicorn: the requirements' fault)
    assert sorted(os.listdir(str(root / "srv/shop/venvs"))) == [".pip"] + ([out_venv_name(root, rid)] if build == "nogunicorn" else [])
    if build == "fail":
        assert "No matching distribution found for flask==99" in err   # pip's words
    # the next run starts from scratch: it succeeds, or (the requirements' fault) fails the same way
    rc, out, err = verb(Fake(root), {"APP": "shop", "RELEASE_ID": rid})
    if build == "nogunicorn":
        assert rc == 1 and message in out["error"] and not (root / "srv/shop/releases" / rid).exists()
    else:
        assert rc == 0 and out["action"] == "copy", err


def test_a_nearly_full_volume_is_named(root, monkeypatch):
    monkeypatch.setattr(install.Install, "free_bytes", lambda self: (50 << 20, "/srv/shop/venvs"))
    rid = upload(root)
    rc, out, _ = verb(Fake(root, build="fail"), {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 1 and "the release volume is nearly full (50 MiB free in /srv/shop/venvs)" in out["error"]
    assert not (root / "srv/shop/releases" / rid).exists()


def test_an_unexpected_error_is_reported_and_cleaned_up(root, monkeypatch):
    rid = upload(root)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(install, "root_owned", boom)
    rc, out, _ = verb(Fake(root), {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 1 and "installing release %s failed: OSError" % rid in out["error"] and "live release is unchanged" in out["error"]
    assert not (root / "srv/shop/releases" / rid).exists()


def test_a_missing_build_user_is_named(root):
    rid = upload(root)
    fake = Fake(root)
    host = fake.host()
    host._passwd = lambda n: None
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["release-install"], stdin=io.StringIO(json.dumps({"APP": "shop", "RELEASE_ID": rid})), stdout=out, stderr=err, host=host)
    assert rc == 1 and "the build user %s is missing" % BUILDER in json.loads(out.getvalue())["error"]
    assert fake.builds() == [] and not (root / "srv/shop/releases" / rid).exists()


def test_docker_installs_the_code_only_and_python_later_adds_the_venv(root):
    rid = upload(root)
    fake = Fake(root)
    rc, out, err = verb(fake, {"APP": "shop", "RELEASE_ID": rid, "RUNTIME": "docker"})
    assert rc == 0 and out["venv"] == "" and fake.builds() == [], err
    dest = root / "srv/shop/releases" / rid
    assert json.loads((dest / release.MARKER).read_text())["runtime"] == "docker" and not (dest / ".venv").exists()
    fake = Fake(root)
    rc, out, err = verb(fake, {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0 and out["action"] == "venv" and len(fake.builds()) == 2, err
    assert "runtime" not in json.loads((dest / release.MARKER).read_text()) and (dest / ".venv").is_symlink()
    # a venv build that fails for a release the docker runtime installed leaves that release, not the venv
    rid2 = upload(root, {"requirements.txt": "flask==99\ngunicorn\n", "wsgi.py": ""})
    assert verb(Fake(root), {"APP": "shop", "RELEASE_ID": rid2, "RUNTIME": "docker"})[0] == 0
    rc, out, _ = verb(Fake(root, build="fail"), {"APP": "shop", "RELEASE_ID": rid2})
    assert rc == 1 and (root / "srv/shop/releases" / rid2 / release.MARKER).exists()
    assert sorted(os.listdir(str(root / "srv/shop/venvs"))) == sorted([".pip", os.path.basename(out_venv(root, rid))])


def out_venv_name(root, rid):
    return release.venv_key((root.parent / "uploads" / rid / "requirements.txt").read_bytes(), VV)


def out_venv(root, rid):
    return "/srv/shop/venvs/" + release.venv_key((root / "srv/shop/releases" / rid / "requirements.txt").read_bytes(), VV)


def test_a_pinned_release_that_is_not_kept_is_refused_before_anything(root):
    fake = Fake(root)
    rc, out, _ = verb(fake, {"APP": "shop", "RELEASE_ID": "b" * 12, "PINNED": 1})
    assert rc == 1 and "is not kept on this server" in out["error"] and fake.builds() == []


# --- transient.py: the unit goes with the step ---
def test_a_stopped_step_stops_its_unit(monkeypatch):
    calls = []

    def run(argv, merge_output=False, input=None):
        calls.append(list(argv))
        if argv[0] == "systemd-run":
            os.kill(os.getpid(), signal.SIGTERM)   # the supervisor's SIGTERM while the unit runs
        return subprocess.CompletedProcess(argv, 0, "", "")
    monkeypatch.setenv("FDEPLOY_STEP_LIMIT", "600")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e:
        transient.run_unit(Host(root="/", run=run), "fdeploy-shop-x", ["User=u"], ["/bin/true"])
    assert e.value.code == 143 and calls[-1] == ["systemctl", "stop", "fdeploy-shop-x"]
    assert "RuntimeMaxSec=600" in calls[0] and calls[0][-2:] == ["--", "/bin/true"]
    assert signal.getsignal(signal.SIGTERM) == before


# --- venv_build.py: what the build user runs ---
def test_a_seed_s_packages_and_console_scripts_are_copied_into_the_new_venv(tmp_path):
    seed, venv = tmp_path / "seed", tmp_path / "new"
    for v in (seed, venv):
        (v / "lib/python3.11/site-packages").mkdir(parents=True)
        (v / "bin").mkdir()
    (seed / "lib/python3.11/site-packages/flask").mkdir()
    (seed / "lib/python3.11/site-packages/flask/__init__.py").write_text("x = 1\n")
    os.utime(str(seed / "lib/python3.11/site-packages/flask/__init__.py"), (1000, 1000))
    (seed / "bin/flask").write_text("#!%s/bin/python\nimport flask\n" % seed)
    (seed / "bin/other").write_text("#!/bin/sh\necho\n")
    (seed / "bin/python").symlink_to("/usr/bin/python3")
    (venv / "bin/python").symlink_to("/usr/bin/python3")
    venv_build.copy_seed(str(seed), str(venv))
    copied = venv / "lib/python3.11/site-packages/flask/__init__.py"
    assert copied.read_text() == "x = 1\n" and os.stat(str(copied)).st_mtime == 1000   # its .pyc stay valid
    assert (venv / "bin/flask").read_text() == "#!%s/bin/python\nimport flask\n" % venv
    assert os.access(str(venv / "bin/flask"), os.X_OK) and (venv / "bin/other").read_text() == "#!/bin/sh\necho\n"
    assert os.readlink(str(venv / "bin/python")) == "/usr/bin/python3"


def test_the_pip_runner_is_used_only_from_a_built_pip(tmp_path):
    pip = tmp_path / ".pip"
    (pip / "lib/python3.11/site-packages/pip").mkdir(parents=True)
    (pip / "lib/python3.11/site-packages/pip/__pip-runner__.py").write_text("")
    assert venv_build.pip_runner(str(pip)) is None
    (pip / ".fdeploy-built").write_text("")
    assert venv_build.pip_runner(str(pip)).endswith("pip/__pip-runner__.py")
