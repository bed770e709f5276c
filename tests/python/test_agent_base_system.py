"""base_system.py: the base step (base-create), its delete (pulumi destroy) and fdeploy purge, from
a temporary server root with apt, useradd, setfacl, chown and runuser replaced at the Host seam:
what runs in which order, what is refused before anything changes, what a delete keeps."""
import fcntl
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import base, base_system, cli  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

PARAMS = {"APP": "shop", "APP_ROOT": "/srv/shop", "APP_USER": "shop", "STACK": "prod", "PACKAGES": "python3 nginx acl"}
BUILD = base.build_user("shop")
MARKED = {"shop": (990, "flask-deploy app shop", "/srv/shop"), "shop_1": (991, "flask-deploy slot shop", "/srv/shop"),
          "shop_2": (992, "flask-deploy slot shop", "/srv/shop"), BUILD: (993, "flask-deploy build shop", "/nonexistent")}


class Machine:
    def __init__(self, users=None, installed=("python3",), fail=(), docker_images=""):
        self.users, self.installed, self.fail, self.images, self.ran = dict(users or {}), installed, fail, docker_images, []

    def __call__(self, argv, merge_output=False):
        self.ran.append(list(argv))
        if argv[0] == "dpkg-query":
            ok = argv[3] in self.installed
            return subprocess.CompletedProcess(argv, 0 if ok else 1, "install ok installed" if ok else "", "")
        if argv[:4] == ["docker", "image", "ls", "-q"]:
            return subprocess.CompletedProcess(argv, 0, self.images, "")
        return subprocess.CompletedProcess(argv, 1 if argv[0] in self.fail else 0, "it failed" if argv[0] in self.fail else "", "")

    def names(self):
        return [a[0] if a[0] != "env" else a[2] + " " + a[3] for a in self.ran if a[0] != "dpkg-query"]


@pytest.fixture
def root(tmp_path):
    for d in ("var/lib/apt/lists", "srv", "etc/systemd/system", "var/log/nginx", "home/.fdeploy/shop/scripts-abc",
              "home/.fdeploy/shop/uploads/0123456789ab"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


def home(root):
    return str(root / "home/.fdeploy/shop")


def create(root, m, params=PARAMS):
    host = Host(root=str(root), run=m, passwd=m.users.get, which=lambda c: None)
    logs = []
    return base_system.base_create(host, dict(params), logs.append, 0, home=home(root)), logs


def test_a_new_server_gets_packages_then_accounts_then_the_layout(root):
    m = Machine()
    r, logs = create(root, m)
    assert r["installed"] == ["nginx", "acl"] and "installing nginx acl" in logs
    assert m.names() == ["apt-get update", "apt-get install", "useradd", "useradd", "useradd", "useradd",
                         "setfacl", "chown", "chmod", "install", "runuser"]
    useradds = [a for a in m.ran if a[0] == "useradd"]
    assert [u[-1] for u in useradds] == ["shop", "shop_1", "shop_2", BUILD]   # the app user first: the slot users' group
    assert useradds[1][-4:] == ["--gid", "shop", "--no-user-group", "shop_1"] and "--gid" not in useradds[0]
    assert ["--comment", "flask-deploy slot shop"] == useradds[1][useradds[1].index("--comment"):][:2]
    # the ACL before the app root loses its other bits (an earlier 0755 layout: nginx never misses a file)
    assert m.ran[-5] == ["setfacl", "-m", "u:www-data:x,u:%s:x" % BUILD, "/srv/shop"]
    assert m.ran[-4:-2] == [["chown", "root:shop", "/srv/shop"], ["chmod", "0750", "/srv/shop"]]
    assert m.ran[-2] == ["install", "-d", "-m", "0770", "-o", "shop", "-g", "shop", "/srv/shop/shared"]
    # shared/'s subfolders are made by the app user itself: root follows no path the app can write
    assert m.ran[-1] == ["runuser", "-u", "shop", "--", "install", "-d", "-m", "0770", "/srv/shop/shared/db", "/srv/shop/shared/backups"]
    modes = {d: oct(os.stat(root / d).st_mode & 0o777) for d in ("srv/shop/releases", "etc/fdeploy", "etc/fdeploy/shop", "home/.fdeploy", "home/.fdeploy/shop")}
    assert modes == {"srv/shop/releases": "0o755", "etc/fdeploy": "0o755", "etc/fdeploy/shop": "0o700",
                     "home/.fdeploy": "0o700", "home/.fdeploy/shop": "0o700"}
    assert (root / "etc/fdeploy/shop.conf").read_text() == "APP_ROOT=/srv/shop\nAPP_USER=shop\nSTACK=prod\n"
    assert "base ready: /srv/shop (user shop)" in logs


def test_a_rerun_installs_and_creates_nothing(root):
    create(root, Machine())
    m = Machine(MARKED, installed=("python3", "nginx", "acl"))
    create(root, m)
    assert m.names() == ["setfacl", "chown", "chmod", "install", "runuser"]


def test_an_app_user_of_an_earlier_version_is_marked_not_created(root):
    (root / "etc/fdeploy").mkdir(parents=True)
    (root / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    users = dict(MARKED, shop=(990, "", "/srv/shop"))
    m = Machine(users, installed=("python3", "nginx", "acl"))
    create(root, m)
    assert [a for a in m.ran if a[0] in ("useradd", "usermod")] == [["usermod", "--comment", "flask-deploy app shop", "shop"]]


@pytest.mark.parametrize("taken", ["shop", "shop_2"])
def test_a_name_someone_else_has_changes_nothing(root, taken):
    m = Machine({taken: (1000, "Shop Keeper", "/home/shop")})
    with pytest.raises(AgentError, match="exists and was not created by flask-deploy for 'shop'; choose another appName"):
        create(root, m)
    assert m.names() == [] and not (root / "srv/shop").exists() and not (root / "etc/fdeploy").exists()


def test_bad_settings_are_named_before_anything_changes(root):
    for key, value, words in (("APP_ROOT", "/srv/../etc", "bad app root"), ("PACKAGES", "nginx; rm", "bad package name")):
        m = Machine()
        with pytest.raises(AgentError, match=words):
            create(root, m, dict(PARAMS, **{key: value}))
        assert m.names() == []


def test_a_symlinked_app_root_or_shared_folder_is_refused(root):
    (root / "srv/shop").symlink_to(root / "home")
    with pytest.raises(AgentError, match="the app folder /srv/shop is a symlink; refusing to use it"):
        create(root, Machine(MARKED, installed=("python3", "nginx", "acl")))
    os.unlink(root / "srv/shop")
    (root / "srv/shop").mkdir()
    (root / "srv/shop/shared").symlink_to("/etc")
    m = Machine(MARKED, installed=("python3", "nginx", "acl"))
    with pytest.raises(AgentError, match="/srv/shop/shared is a symlink"):
        create(root, m)
    assert not any(a[0] in ("install", "runuser") for a in m.ran)


def test_shared_folders_the_app_user_cannot_make_fail_naming_them(root):
    with pytest.raises(AgentError, match="could not create shared/db and shared/backups as shop"):
        create(root, Machine(MARKED, installed=("python3", "nginx", "acl"), fail=("runuser",)))


def test_apt_waits_for_another_installation_then_gives_up_naming_it(root):
    host = Host(root=str(root), run=Machine())
    fd = os.open(root / "var/lib/apt/lists", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    slept = []
    try:
        with pytest.raises(AgentError, match="another package installation held /var/lib/apt/lists for 3s"):
            base_system.apt_install(host, ["nginx"], lambda line: None, sleep=slept.append, wait=3)
    finally:
        os.close(fd)
    assert len(slept) == 3 and host.commands == []
    base_system.apt_install(host, ["nginx"], lambda line: None, sleep=slept.append, wait=3)
    assert host.commands[-1] == ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"]


def deployed(root):
    create(root, Machine())
    for d in ("releases/0123456789ab", "venvs/abc", "migrations", "slots", "tools", "shared/db", "files"):
        (root / "srv/shop" / d).mkdir(parents=True, exist_ok=True)
    (root / "srv/shop/shared/db/app.sqlite3").write_text("data")
    (root / "srv/shop/current").symlink_to("/srv/shop/releases/0123456789ab")
    (root / "etc/fdeploy/shop/env").write_text("SECRET=x\n")
    (root / "home/.fdeploy/shop/migrations-1").mkdir()


def test_delete_removes_the_code_never_the_data(root):
    deployed(root)
    m = Machine(MARKED, docker_images="img1\nimg2\nimg1\n")
    err = io.StringIO()
    host = Host(root=str(root), run=m, passwd=m.users.get, which=lambda c: "/usr/bin/docker")
    assert base_system.base_delete(host, {"APP": "shop"}, err.write, 0, home=home(root))["removed"] is True
    assert sorted(os.listdir(root / "srv/shop")) == ["files", "shared"]
    assert (root / "srv/shop/shared/db/app.sqlite3").read_text() == "data" and (root / "etc/fdeploy/shop/env").exists()
    assert sorted(os.listdir(root / "home/.fdeploy/shop")) == ["scripts-abc"]
    assert ["userdel", BUILD] in m.ran and ["userdel", "shop"] not in m.ran
    assert m.ran[-1] == ["docker", "image", "rm", "-f", "img1", "img2"]
    assert "kept the data of shop: /srv/shop/shared" in err.getvalue() and "npm run purge -- --stack prod --confirm shop" in err.getvalue()


def test_delete_through_the_cli_takes_the_app_as_a_word_and_never_reads_stdin(root):
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["base-delete", "--app", "shop"], stdin=None, stdout=out, stderr=err, host=Host(root=str(root), run=Machine())) == 0
    assert json.loads(out.getvalue())["removed"] is False and "nothing to remove for shop" in err.getvalue()


def test_purge_is_refused_while_deployed_then_deletes_everything_of_the_app(root):
    deployed(root)
    (root / "etc/systemd/system/fdeploy-shop@.service").write_text("")
    (root / "var/log/nginx/fdeploy-shop.access.log").write_text("")
    (root / "var/log/nginx/fdeploy-shopping.access.log").write_text("")   # another app's
    (root / "etc/fdeploy/shop.backup-id").write_text("")
    users = dict(MARKED, shop_2=(992, "someone else", "/home/x"))
    m = Machine(users)
    host = Host(root=str(root), run=m, passwd=m.users.get)
    with pytest.raises(AgentError, match="app 'shop' is still deployed on this server; run pulumi destroy first"):
        base_system.base_purge(host, {"APP": "shop"}, print, 0, home=home(root))
    assert (root / "srv/shop/shared/db/app.sqlite3").exists() and m.ran == []
    os.unlink(root / "etc/systemd/system/fdeploy-shop@.service")
    r = base_system.base_purge(host, {"APP": "shop"}, print, 0, home=home(root))
    assert r["purged"] is True and "purged shop: /srv/shop (database, backups)" in r["message"]
    for gone in ("srv/shop", "etc/fdeploy/shop", "etc/fdeploy/shop.conf", "etc/fdeploy/shop.backup-id",
                 "var/log/nginx/fdeploy-shop.access.log", "home/.fdeploy/shop"):
        assert not os.path.lexists(root / gone), gone
    assert (root / "var/log/nginx/fdeploy-shopping.access.log").exists()
    assert m.ran == [["userdel", "shop_1"], ["userdel", "shop"], ["userdel", BUILD]]   # shop_2 is not ours
    assert base_system.base_purge(host, {"APP": "shop"}, print, 0, home=home(root))["message"] == "nothing to purge for shop"
