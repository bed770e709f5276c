"""The slot users (issue 25, item 3): their names, which one a new release runs as (never the live
slot's, also after a deploy killed between writing a slot's drop-in and restarting it), that their
leftovers are ended and never the live slot's, the slot drop-ins, and shared/ made group-writable
without following a link."""
import io
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, slotuser  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

UIDS = {"shop": 0, "shop_1": 2001, "shop_2": 2002}   # the app user is root here: the files tmp_path holds are root's
APP = App(name="shop", root="/srv/shop", user="shop")


class Fake:
    """systemctl show -p MainPID answers MAINPID; kill_user records whom it was asked to kill."""
    def __init__(self, mainpid="0"):
        self.mainpid, self.calls, self.killed = mainpid, [], []

    def run(self, argv, merge_output=False):
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, self.mainpid + "\n" if argv[:2] == ["systemctl", "show"] else "", "")

    def user_ids(self, name):
        if name not in UIDS:
            raise KeyError(name)
        return UIDS[name], 0

    def host(self, root):
        return Host(root=str(root), run=self.run, user_ids=self.user_ids, which=lambda c: None,
                    kill_user=lambda uid, gid: self.killed.append(uid))


@pytest.fixture
def root(tmp_path):
    return app_root(tmp_path, "srv/shop/slots", "srv/shop/shared")


def verb(fake, root, name, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([name], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host(root))
    return rc, json.loads(out.getvalue()), err.getvalue()


@pytest.mark.parametrize("user", ["ab", "shop", "a" * 30, "a" * 31, "b" * 32, "my-app-with-a-rather-long-name-x"])
def test_names_are_valid_distinct_and_at_most_32_characters(user):
    names = slotuser.slot_users(user)
    assert len(set(names + [user])) == 3
    for n in names:
        assert len(n) <= 32 and re.fullmatch(r"[a-z_][a-z0-9_-]*", n), n
        assert "_" in n   # never an app user's name: app names have no "_"
    assert slotuser.slot_users("shop") == ["shop_1", "shop_2"]


def test_long_names_sharing_a_prefix_get_different_slot_users():
    a, b = "a" * 28 + "-one", "a" * 28 + "-two"
    assert set(slotuser.slot_users(a)).isdisjoint(slotuser.slot_users(b))


@pytest.mark.parametrize("live, new", [("", "shop_1"), ("shop", "shop_1"), ("shop_1", "shop_2"), ("shop_2", "shop_1")])
def test_a_new_release_never_runs_as_the_live_slot_user(live, new):
    assert slotuser.next_user(APP, live) == new


def live_on(root, slot, dropin_user=None):
    (root / "srv/shop/slots/live").write_text(slot + "\n")
    if dropin_user:
        d = root / ("etc/systemd/system/fdeploy-shop@%s.service.d" % slot)
        d.mkdir(parents=True, exist_ok=True)
        (d / "50-slot-user.conf").write_text("[Service]\nUser=%s\nGroup=shop\n" % dropin_user)


def test_the_running_process_decides_the_live_user_over_a_drop_in(root):
    # a deploy killed after writing the restarted slot's drop-in (shop_2), before the restart:
    # the live process still runs as shop_1, so the next release must not be shop_1
    live_on(root, "main", "shop_2")
    proc = root / "proc/4242"
    proc.mkdir(parents=True)
    (proc / "status").write_text("Name:\tgunicorn\nUid:\t2001\t2001\t2001\t2001\n")
    fake = Fake(mainpid="4242")
    rc, result, _ = verb(fake, root, "new-release-user", {"APP": "shop"})
    assert rc == 0 and result["user"] == "shop_2" and result["live"] == "shop_1"
    assert fake.killed == [2002]   # the new release's user's leftovers, never the live one's
    # not running: the drop-in says who it runs as
    rc, result, _ = verb(Fake(), root, "new-release-user", {"APP": "shop"})
    assert result["user"] == "shop_1" and result["live"] == "shop_2"


def test_a_live_slot_from_before_slot_users_runs_as_the_app_user(root):
    live_on(root, "blue")
    rc, result, _ = verb(Fake(), root, "new-release-user", {"APP": "shop"})
    assert rc == 0 and result == {"ok": True, "user": "shop_1", "live": "shop", "users": ["shop_1", "shop"]}
    assert slotuser.live_user(Fake().host(root), APP) == "shop"   # fdeploy exec and console run as it (ops.py)


def test_a_missing_slot_user_asks_for_the_base_step(root, monkeypatch):
    monkeypatch.delitem(UIDS, "shop_1")
    rc, result, _ = verb(Fake(), root, "new-release-user", {"APP": "shop"})
    assert rc == 1 and "shop_1 does not exist" in result["error"] and "pulumi up" in result["error"]


def test_slot_user_writes_the_drop_in_reloads_once_and_removes_it_for_docker(root):
    fake = Fake()
    assert verb(fake, root, "slot-user", {"APP": "shop", "SLOT": "green", "USER": "shop_2"})[1]["changed"]
    path = root / "etc/systemd/system/fdeploy-shop@green.service.d/50-slot-user.conf"
    assert "User=shop_2\nGroup=shop\n" in path.read_text() and oct(path.stat().st_mode & 0o777) == "0o644"
    assert not verb(fake, root, "slot-user", {"APP": "shop", "SLOT": "green", "USER": "shop_2"})[1]["changed"]
    assert fake.calls == [["systemctl", "daemon-reload"]]
    rc, result, _ = verb(fake, root, "slot-user", {"APP": "shop", "SLOT": "green", "USER": "root"})
    assert rc == 1 and "not a user of app shop" in result["error"]
    rc, result, _ = verb(fake, root, "slot-user", {"APP": "shop", "SLOT": "../x", "USER": "shop_1"})
    assert rc == 1 and "bad slot" in result["error"]
    assert verb(fake, root, "slot-user", {"APP": "shop", "SLOT": "green", "USER": ""})[1]["changed"]
    assert not path.exists()


def test_shared_modes_mirror_the_owner_bits_and_follow_no_link(root, tmp_path):
    shared = root / "srv/shop/shared"
    (shared / "db").mkdir(mode=0o700)
    db = shared / "db/app.sqlite3"
    db.write_text("x"); db.chmod(0o600)
    (shared / "readonly").write_text("r"); (shared / "readonly").chmod(0o400)
    outside = tmp_path / "outside"
    outside.write_text("root's"); outside.chmod(0o600)
    (shared / "link").symlink_to(outside)
    (shared / "dirlink").symlink_to(tmp_path / "srv", target_is_directory=True)
    foreign = shared / "foreign"
    foreign.write_text("f"); foreign.chmod(0o600); os.chown(foreign, 4242, 4242)
    os.mkfifo(shared / "fifo", 0o600)
    (shared / "db").chmod(0o700)
    shared.chmod(0o750)
    logs = []
    assert slotuser.shared_modes(Fake().host(root), APP, logs.append) == 6   # 4 modes, 2 folders' default ACL
    mode = lambda p: oct(os.lstat(p).st_mode & 0o7777)
    assert mode(shared) == "0o770" and mode(shared / "db") == "0o770" and mode(db) == "0o660"
    assert mode(shared / "readonly") == "0o440"
    assert mode(outside) == "0o600" and mode(tmp_path / "srv") == "0o755"   # no link followed
    assert mode(foreign) == "0o600" and mode(shared / "fifo") == "0o600"   # not the app's, not a file
    assert slotuser.shared_modes(Fake().host(root), APP, logs.append) == 0   # idempotent


def made_with_umask_0077(folder):
    """The mode of a file a process with umask 0077 creates in FOLDER asking for 0660 (as SQLite asks
    for a -shm with its database's mode)."""
    code = "import os,sys; os.umask(0o077); os.close(os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o660))"
    subprocess.run([sys.executable, "-c", code, str(folder / "app.sqlite3-shm")], check=True)
    return oct(os.stat(folder / "app.sqlite3-shm").st_mode & 0o777)


def test_shared_folders_make_new_files_group_writable_whatever_the_makers_umask(root, tmp_path):
    # the previous main's live release runs with UMask=0077 until the switch; its SQLite can leave a
    # -shm 0600 that the new release's migration (a slot user) cannot open: "unable to open database file"
    db = root / "srv/shop/shared/db"
    db.mkdir(parents=True, mode=0o700)
    elsewhere = tmp_path / "not-shared"
    elsewhere.mkdir()
    assert made_with_umask_0077(elsewhere) == "0o600"   # what the umask does without the folder's ACL
    slotuser.shared_modes(Fake().host(root), APP, [].append)
    assert made_with_umask_0077(db) == "0o660"
    sub = db / "later"
    sub.mkdir()   # a folder made afterwards inherits it
    assert made_with_umask_0077(sub) == "0o660"
    assert slotuser.shared_modes(Fake().host(root), APP, [].append) == 0   # idempotent
