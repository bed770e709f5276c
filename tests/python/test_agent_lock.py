"""The deploy lock's layout (agent lock.py): a root-only FOLDER that this version flocks read-only.
An older version opened /run/fdeploy/<app>.lock as a file for writing: on a converted server it
fails at its first lock, before it changes anything. The conversion never lets two steps hold the
lock at once, and the folder comes back at boot (tmpfiles.d)."""
import fcntl
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import lock  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402


@pytest.fixture
def host(tmp_path):
    return Host(root=str(tmp_path))


def test_an_old_lock_file_becomes_the_folder_and_the_old_way_of_opening_it_fails(host, tmp_path):
    (tmp_path / "run/fdeploy").mkdir(mode=0o700, parents=True)
    old = tmp_path / "run/fdeploy/shop.lock"
    old.write_text("")
    with lock.deploy_lock(host, "shop", 0, log=lambda _: None):
        assert old.is_dir() and (old.stat().st_mode & 0o777) == 0o700
    # what the previous version's lib.sh does first (exec 9>"$lock"), and its agent (O_RDWR|O_CREAT)
    r = subprocess.run(["bash", "-c", 'set -e; exec 9>"$1"; echo changed-something', "-", str(old)], capture_output=True, text=True)
    assert r.returncode != 0 and "changed-something" not in r.stdout and "Is a directory" in r.stderr
    with pytest.raises(IsADirectoryError):
        os.open(old, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    assert (tmp_path / "etc/tmpfiles.d/fdeploy-lock-shop.conf").read_text() == \
        "d /run/fdeploy 0700 root root -\nd /run/fdeploy/shop.lock 0700 root root -\n"


def test_an_old_lock_file_held_by_a_step_is_waited_for_then_converted(host, tmp_path):
    (tmp_path / "run/fdeploy").mkdir(mode=0o700, parents=True)
    old = tmp_path / "run/fdeploy/shop.lock"
    fd = os.open(old, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waits = []

    def sleep(s):
        waits.append(s)
        if len(waits) == 3:
            os.close(fd)   # the old step ends
    lock.prepare(host, "shop", sleep=sleep, wait_seconds=5)
    assert len(waits) == 3 and old.is_dir()
    fd = os.open(lock.prepare(host, "shop"), os.O_RDONLY)   # a second prepare leaves the folder as it is
    os.close(fd)


def test_an_old_lock_file_held_too_long_names_its_holder(host, tmp_path):
    (tmp_path / "run/fdeploy").mkdir(mode=0o700, parents=True)
    old = tmp_path / "run/fdeploy/shop.lock"
    fd = os.open(old, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(AgentError, match=r"old deploy lock file .* is held by pid %d" % os.getpid()):
            lock.prepare(host, "shop", sleep=lambda s: None, wait_seconds=1)
        assert old.is_file()
    finally:
        os.close(fd)


def test_a_symlink_in_its_place_is_refused(host, tmp_path):
    (tmp_path / "run/fdeploy").mkdir(mode=0o700, parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "run/fdeploy/shop.lock")
    with pytest.raises(AgentError, match="not the deploy lock this version uses"):
        lock.prepare(host, "shop")


def test_the_deploy_that_holds_the_lock_is_recorded_then_kept_as_the_last(host, tmp_path, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "deploy")
    (tmp_path / "run").mkdir()
    record = tmp_path / "run/fdeploy/shop.lock.owner"
    with lock.deploy_lock(host, "shop", 0, log=lambda _: None):
        pid, since, user = record.read_text().split()
        assert pid == str(os.getpid()) and since.endswith("Z") and user == "deploy"
        assert (record.stat().st_mode & 0o777) == 0o600
    assert not record.exists()
    assert (tmp_path / "run/fdeploy/shop.lock.last").read_text().split()[2] == "deploy"


def test_a_server_wide_step_lock_waits_says_so_once_then_refuses_with_the_time_waited(tmp_path):
    """flock_within (apt's lists folder, the PostgreSQL server's lock): a free lock at once; a held one
    waited for second by second, ON_WAIT once; the refusal names how long it waited."""
    path = str(tmp_path / "step.lock")
    holder, waiter = os.open(path, os.O_RDWR | os.O_CREAT), os.open(path, os.O_RDWR)
    told, slept = [], []
    lock.flock_within(holder, 5, slept.append, lambda: told.append("wait"), lambda w: AgentError("waited %d" % w))
    assert (told, slept) == ([], []), "a free lock is taken at once"
    with pytest.raises(AgentError, match="waited 3"):
        lock.flock_within(waiter, 3, slept.append, lambda: told.append("wait"), lambda w: AgentError("waited %d" % w))
    assert (told, slept) == (["wait"], [1, 1, 1])

    def release_on_second_sleep(s):
        slept.append(s)
        if len(slept) == 5:
            fcntl.flock(holder, fcntl.LOCK_UN)
    lock.flock_within(waiter, 10, release_on_second_sleep, lambda: None, lambda w: AgentError("waited %d" % w))
    assert len(slept) == 5, "taken once the holder let go"
    os.close(holder)
    os.close(waiter)
