"""The deploy lease: one deploy's steps hold it from the first to LEASE_SECONDS after the last, so
another stack's steps wait instead of running between them; a finished or crashed deploy's lease
runs out on its own; steps that name no deploy (fdeploy commands, ServerState) take only the flock."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import lease, lock  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

A, B = "proj/dev", "proj/dev-copy"


@pytest.fixture
def host(tmp_path):
    (tmp_path / "run/fdeploy").mkdir(parents=True, mode=0o700)
    return Host(root=str(tmp_path))


def test_a_lease_holds_for_its_deploy_and_runs_out(host, tmp_path):
    assert lease.take(host, "shop", A, now=1000) is None
    assert oct(os.stat(tmp_path / "run/fdeploy/shop.lease").st_mode & 0o777) == "0o600"
    assert lease.take(host, "shop", A, now=1005) is None, "its own deploy takes it again"
    assert lease.take(host, "shop", B, now=1010)["deploy"] == A, "another deploy waits"
    lease.renew(host, "shop", A, now=1020)        # A's step ends: 30 s from here
    assert lease.take(host, "shop", B, now=1049) is not None
    assert lease.take(host, "shop", B, now=1051) is None, "ran out 30 s after A's last step"
    lease.renew(host, "shop", A, now=1052)        # not A's any more: no renewal
    assert lease.read(host, "shop")["deploy"] == B


def test_a_damaged_lease_is_no_lease(host, tmp_path):
    (tmp_path / "run/fdeploy/shop.lease").write_text("{not json")
    assert lease.take(host, "shop", B) is None


def test_the_step_lock_waits_for_another_deploys_lease_then_names_it(host):
    lease.take(host, "shop", A)
    waits, lines = [], []
    with pytest.raises(AgentError, match=r"another deploy of 'shop' is running on this server: the deploy of stack proj/dev \(between two of its steps"):
        with lock.deploy_lock(host, "shop", 4, log=lines.append, sleep=waits.append, deploy=B):
            pass
    assert waits == [2, 2] and "the deploy of stack proj/dev" in lines[0]
    # the same deploy's next step goes on at once; a step naming no deploy takes only the flock
    with lock.deploy_lock(host, "shop", 0, log=lines.append, deploy=A):
        pass
    with lock.deploy_lock(host, "shop", 0, log=lines.append):
        pass


def test_a_step_that_ends_renews_its_lease(host, monkeypatch):
    with lock.deploy_lock(host, "shop", 0, log=print, deploy=A):
        before = lease.read(host, "shop")["expires"]
        monkeypatch.setattr(lease.time, "time", lambda: before + 100)
    assert lease.read(host, "shop")["expires"] == before + 100 + lease.lease_seconds()


def test_another_deploys_lease_is_named(host):
    lease.take(host, "shop", A)
    assert lease.describe(lease.take(host, "shop", B)).startswith("the deploy of stack proj/dev")
    assert lease.take(host, "shop", A) is None


def test_a_bad_deploy_id_is_refused():
    """Every step's DEPLOY passes deploy_of (lock.deploy_lock's deploy=) before the lock is taken."""
    with pytest.raises(AgentError, match=r"bad deploy id 'a b; rm' \(expected <project>/<stack>\)"):
        lease.deploy_of({"APP": "shop", "DEPLOY": "a b; rm"})
    assert lease.deploy_of({"APP": "shop"}) == "" and lease.deploy_of({"DEPLOY": A}) == A


def test_a_wait_that_moves_from_the_lock_to_the_lease_says_so(host, tmp_path):
    import fcntl
    fd = os.open(lock.prepare(host, "shop"), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)          # the other deploy's step runs …
    lease.take(host, "shop", A)
    lines = []

    def step_ends(_):
        fcntl.flock(fd, fcntl.LOCK_UN)      # … and ends, its lease holding
    with pytest.raises(AgentError):
        with lock.deploy_lock(host, "shop", 4, log=lines.append, sleep=step_ends, deploy=B):
            pass
    os.close(fd)
    assert len(lines) == 2 and "the lock" in lines[0] and "the deploy of stack proj/dev" in lines[1]
    assert lines[0].endswith(", a step of the deploy of stack proj/dev)…"), "the step that holds the lock is named by its deploy"


def test_a_lock_held_with_no_lease_names_only_its_holder(host):
    import fcntl
    fd = os.open(lock.prepare(host, "shop"), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)          # a step that names no deploy (an fdeploy command, ServerState)
    lease.take(host, "shop", A, now=1000)   # a lease that ran out long ago
    lines = []
    with pytest.raises(AgentError, match=r"held by pid %d \([^)]*\); waited 2s" % os.getpid()):
        with lock.deploy_lock(host, "shop", 2, log=lines.append, sleep=lambda _: None, deploy=B):
            pass
    os.close(fd)
    assert len(lines) == 1 and "a step of" not in lines[0]
