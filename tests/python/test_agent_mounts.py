"""The containers' bind mounts (runtime docker, fdeploy_agent/mounts.py, issue 25): the app owns
shared/, so whatever it put there is resolved by root without following a link, checked, and mounted
through the descriptor that was checked. A temporary folder stands for /; the mounts are a fake that
records which inode each mount point got (one test makes real mounts, as root)."""
import io
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, host as hosts, mounts, units  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

APP = App(name="shop", root="/srv/shop", user="shop")
UID = 1001


class FakeMounts:
    """mount(2) as a table: target -> (device, inode) of what SOURCE named when it was mounted."""

    def __init__(self):
        self.table = {}
        self.during = None   # called between the descriptor's check and the mount (a racing app)

    def bind(self, source, target):
        assert source.startswith("/proc/self/fd/"), "only a checked descriptor is ever mounted"
        if self.during:
            self.during()
        st = os.stat(source)   # the magic link: the descriptor's own inode
        self.table.setdefault(target, []).append((st.st_dev, st.st_ino))

    def unmount(self, target):
        stack = self.table.get(target)
        if not stack:
            return False
        stack.pop()
        if not stack:
            del self.table[target]
        return True


@pytest.fixture
def fake():
    return FakeMounts()


@pytest.fixture
def host(tmp_path, fake):
    (tmp_path / "etc/fdeploy").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    (tmp_path / "srv/shop/shared/uploads").mkdir(parents=True, mode=0o755)
    (tmp_path / "srv/shop/shared/data/media").mkdir(parents=True, mode=0o755)
    for p in ("srv", "srv/shop"):
        os.chmod(tmp_path / p, 0o755)
    for p in ("shared", "shared/uploads", "shared/data", "shared/data/media"):
        os.chown(tmp_path / "srv/shop" / p, UID, UID)
    (tmp_path / "run").mkdir()
    return Host(root=str(tmp_path), run=lambda argv: pytest.fail("no command: %r" % (argv,)),
                user_ids=lambda name: (UID, UID), which=lambda c: "/usr/bin/" + c,
                bind_mount=fake.bind, unmount=fake.unmount)


def inode(path):
    st = os.lstat(path)
    return (st.st_dev, st.st_ino)


def point(tmp_path, slot, name):
    return str(tmp_path / "run/fdeploy-mnt/shop" / slot / name)


def agent(host, verb, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def test_each_mount_point_holds_the_checked_folder(host, tmp_path, fake):
    rc, out, _ = agent(host, "docker-mounts", {"APP": "shop", "SLOT": "blue", "SHARED_DIRS": "uploads data/media"})
    assert rc == 0 and out["mounted"] == ["/srv/shop/shared", "/app/uploads", "/app/data/media"]
    assert fake.table == {
        point(tmp_path, "blue", "shared"): [inode(tmp_path / "srv/shop/shared")],
        point(tmp_path, "blue", "dir0"): [inode(tmp_path / "srv/shop/shared/uploads")],
        point(tmp_path, "blue", "dir1"): [inode(tmp_path / "srv/shop/shared/data/media")],
    }
    assert oct(os.stat(tmp_path / "run/fdeploy-mnt/shop/blue").st_mode & 0o777) == "0o700"
    assert units.docker_app_args(APP, UID, UID, [], ["uploads", "data/media"], "blue")[-6:] == [
        "--mount", "type=bind,source=/run/fdeploy-mnt/shop/blue/shared,target=/srv/shop/shared",
        "--mount", "type=bind,source=/run/fdeploy-mnt/shop/blue/dir0,target=/app/uploads",
        "--mount", "type=bind,source=/run/fdeploy-mnt/shop/blue/dir1,target=/app/data/media"]


@pytest.mark.parametrize("plant, dirs, message", [
    # the attack of issue 25: the app's folder swapped for a link to the host's files
    (lambda t: (os.rename(t / "srv/shop/shared/uploads", t / "srv/shop/shared/u.real"),
                os.symlink("/etc", t / "srv/shop/shared/uploads")), "uploads", "/srv/shop/shared/uploads is a symlink"),
    (lambda t: os.symlink("/root", t / "srv/shop/shared/elsewhere"), "elsewhere", "/srv/shop/shared/elsewhere is a symlink"),
    # a link anywhere on the way (a folder inside a linked folder)
    (lambda t: (os.rename(t / "srv/shop/shared/data", t / "srv/shop/shared/d.real"),
                os.symlink("/srv/other/shared", t / "srv/shop/shared/data")), "data/media", "/srv/shop/shared/data is a symlink"),
    (lambda t: (t / "srv/shop/shared/file").write_text("x"), "file", "/srv/shop/shared/file is not a folder"),
    (lambda t: None, "missing", "/srv/shop/shared/missing does not exist"),
    (lambda t: os.chown(t / "srv/shop/shared/uploads", 0, 0), "uploads", "/srv/shop/shared/uploads is not owned by the app user shop"),
    (lambda t: os.chown(t / "srv/shop/shared", 0, 0), "", "/srv/shop/shared is not owned by the app user shop"),
    (lambda t: os.chmod(t / "srv/shop", 0o775), "", "/srv/shop is not a folder only root can change"),
])
def test_a_planted_path_is_refused_naming_it_and_nothing_is_mounted(host, tmp_path, fake, plant, dirs, message):
    plant(tmp_path)
    rc, out, err = agent(host, "docker-mounts", {"APP": "shop", "SLOT": "green", "SHARED_DIRS": dirs})
    assert rc == 1 and message in out["error"] and err.startswith("error: "), out
    assert fake.table == {}


def test_a_swap_after_the_check_changes_nothing(host, tmp_path, fake):
    # the app wins every race it can: right before each mount, the folder becomes a link to /etc
    shared = tmp_path / "srv/shop/shared"
    original = inode(shared / "uploads")

    def swap():
        if (shared / "uploads").is_symlink():
            return
        os.rename(shared / "uploads", shared / "moved")
        os.symlink("/etc", shared / "uploads")
    fake.during = swap
    mounts.prepare(host, APP, "blue", ["uploads"])
    assert fake.table[point(tmp_path, "blue", "dir0")] == [original], "the inode checked, not the link's target"


def test_again_replaces_the_slot_mounts_and_unmount_detaches_them(host, tmp_path, fake):
    mounts.prepare(host, APP, "blue", ["uploads"])
    fake.table[point(tmp_path, "blue", "dir0")].append(("stacked", 1))   # e.g. left by a crash
    mounts.prepare(host, APP, "blue", ["uploads"])
    assert fake.table[point(tmp_path, "blue", "dir0")] == [inode(tmp_path / "srv/shop/shared/uploads")]
    mounts.prepare(host, APP, "green", [])
    assert agent(host, "docker-unmount", {"APP": "shop", "SLOT": "blue"})[0] == 0
    assert sorted(fake.table) == [point(tmp_path, "green", "shared")]
    assert not (tmp_path / "run/fdeploy-mnt/shop/blue").exists()
    assert agent(host, "docker-unmount", {"APP": "shop"})[0] == 0   # service.sh delete: every slot
    assert fake.table == {} and os.listdir(tmp_path / "run/fdeploy-mnt/shop") == []
    assert agent(host, "docker-unmount", {"APP": "shop"})[0] == 0   # idempotent


def test_a_planted_mount_folder_is_refused(host, tmp_path):
    (tmp_path / "run/fdeploy-mnt").mkdir()
    os.chown(tmp_path / "run/fdeploy-mnt", UID, UID)
    with pytest.raises(AgentError, match="not a root-owned folder"):
        mounts.prepare(host, APP, "blue", [])


@pytest.mark.parametrize("params, message", [
    ({"SLOT": "../x"}, "bad slot"),
    ({"SLOT": "blue", "SHARED_DIRS": "../etc"}, "flask-deploy:sharedDirs"),
    ({"SLOT": "blue", "SHARED_DIRS": "/etc"}, "flask-deploy:sharedDirs"),
])
def test_bad_parameters(host, fake, params, message):
    rc, out, _ = agent(host, "docker-mounts", dict(params, APP="shop"))
    assert rc == 1 and message in out["error"] and fake.table == {}


def test_the_unit_mounts_on_every_start_and_detaches_on_stop(host, tmp_path):
    rc, out, _ = agent(host, "unit-stage", {"APP": "shop", "WORKERS": 2, "APP_MODULE": "wsgi:app", "TIMEOUT": 30,
                                            "RUNTIME": "docker", "ENV_NAMES": "", "SHARED_DIRS": "uploads"})
    assert rc == 0, out
    service = (tmp_path / "etc/fdeploy/shop/service.desired").read_text()
    lines = service.splitlines()
    params = [line for line in lines if line.startswith("StandardInputText=")]
    assert params == ['StandardInputText={"APP": "shop", "SHARED_DIRS": "uploads", "SLOT": "%i"}']
    pre = [line for line in lines if line.startswith("ExecStartPre=")]
    agent_dir = units.unit_word(units.AGENT)
    assert pre[-1] == "ExecStartPre=+%s /usr/bin/python3 -I -B %s docker-mounts" % (units.HOST_MOUNT_NS, agent_dir)   # unconfined: the host's mounts
    assert "ExecStopPost=+%s /usr/bin/python3 -I -B %s docker-unmount" % (units.HOST_MOUNT_NS, agent_dir) in lines
    assert "--mount type=bind,source=/run/fdeploy-mnt/shop/%i/dir0,target=/app/uploads" in service
    assert " -v /srv" not in service, "no path of the app's is ever a mount source"


def test_release_commands_get_their_own_mounts(host, tmp_path, fake):
    out, err = io.StringIO(), io.StringIO()   # the bash glue's form: one word a line
    rc = cli.main(["docker-args", "--field", "args"], stdin=io.StringIO(json.dumps({"APP": "shop", "ENV_NAMES": "A", "SHARED_DIRS": "uploads"})),
                  stdout=out, stderr=err, host=host)
    words = out.getvalue().splitlines()
    assert rc == 0 and words[:2] == ["--user", "1001:1001"] and "A" in words, err.getvalue()
    assert "type=bind,source=/run/fdeploy-mnt/shop/release-cmd/dir0,target=/app/uploads" in words
    assert fake.table[point(tmp_path, "release-cmd", "dir0")] == [inode(tmp_path / "srv/shop/shared/uploads")]


@pytest.mark.skipif(os.geteuid() != 0, reason="real mounts need root")
def test_real_bind_mount_through_the_descriptor(tmp_path):
    """mount(2) of /proc/self/fd/N binds the descriptor's folder even when its path is a link by then."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app/mine.txt").write_text("the app's")
    (tmp_path / "host").mkdir()
    (tmp_path / "host/secret.txt").write_text("the host's")
    target = tmp_path / "point"
    target.mkdir()
    fd = os.open(tmp_path / "app", os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY)
    os.rename(tmp_path / "app", tmp_path / "app.moved")
    os.symlink(tmp_path / "host", tmp_path / "app")
    try:
        try:
            hosts._bind_mount("/proc/self/fd/%d" % fd, str(target))
        except OSError as e:
            pytest.skip("no mount here: %s" % e)
        assert os.listdir(target) == ["mine.txt"]
        assert hosts._unmount(str(target)) is True
        assert hosts._unmount(str(target)) is False
        assert os.listdir(target) == []
    finally:
        os.close(fd)
        while hosts._unmount(str(target)):
            pass
