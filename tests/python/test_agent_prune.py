"""What a switch that went live prunes (agent prune.py): old releases, their uploads, images and
venvs, and the SSH user's old uploads; never a slot's release, the newest that went live, or
anything being installed right now."""
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import prune  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

A, B, C, D, E = "a" * 12, "b" * 12, "c" * 12, "d" * 12, "e" * 12
OLD = time.time() - 7200


def age(path, when=OLD):
    os.utime(path, (when, when), follow_symlinks=False)


@pytest.fixture
def root(tmp_path):
    r = app_root(tmp_path / "root", "srv/shop/releases", "srv/shop/slots", "srv/shop/venvs", "srv/shop/migrations/m1")
    (r / "srv/shop/migrations/current").symlink_to("/srv/shop/migrations/m1")
    for rid in (A, B, C, D, E):
        d = r / "srv/shop/releases" / rid
        d.mkdir()
        (d / ".fdeploy-release.json").write_text("{}")
    lines = [{"time": "2026-01-01T00:00:0%dZ" % i, "release": rid, "status": status, "strategy": "restart", "schema": 1}
             for i, (rid, status) in enumerate([(A, "live"), (B, "live"), (C, "failed"), (D, "live")])]
    (r / "srv/shop/history.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (r / "srv/shop/slots/blue").symlink_to("/srv/shop/releases/" + A)   # a slot keeps its release
    return r


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    for name in ("scripts-111111111111", "scripts-222222222222", "migrations-m1", "migrations-m0", "uploads/" + C):
        (h / name).mkdir(parents=True)
    return h


def run(root, home, keep="2", docker=None):
    def fake(argv, merge_output=False, input=None):
        if argv[:3] == ["docker", "image", "ls"]:
            return subprocess.CompletedProcess(argv, 0, "".join(t + "\n" for t in docker), "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    host = Host(root=str(root), run=fake, which=lambda c: "/usr/bin/docker" if docker is not None else None)
    logs = []
    out = prune.prune(host, {"APP": "shop", "KEEP_RELEASES": keep}, logs.append, 0,
                      bundle=str(home / "scripts-222222222222"))
    return out, host, logs


def releases(root):
    return sorted(os.listdir(root / "srv/shop/releases"))


def aged(root, home):
    for p in list((root / "srv/shop/releases").iterdir()) + list((root / "srv/shop/venvs").iterdir()) + list(home.iterdir()):
        age(p)


def test_keeps_slot_targets_and_the_newest_live_releases(root, home):
    aged(root, home)
    out, _, logs = run(root, home, keep="2")
    # D, B: the 2 newest that went live; A: slot blue; C failed and E never went live
    assert releases(root) == [A, B, D]
    assert sorted(out["releases"]) == [C, E]
    assert not (home / "uploads" / C).exists()
    assert "pruned release %s" % C in logs


def test_a_release_made_this_minute_is_left(root, home):
    aged(root, home)
    age(root / "srv/shop/releases" / E, time.time())   # being installed by a deploy waiting for the lock
    run(root, home)
    assert E in releases(root) and C not in releases(root)


def test_a_link_in_releases_is_never_followed(root, home, tmp_path):
    aged(root, home)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keepme").write_text("x")
    (root / "srv/shop/releases/ffffffffffff").symlink_to(outside)
    run(root, home)
    assert (outside / "keepme").exists()


def test_venvs_no_kept_release_links_to_go(root, home):
    venvs = root / "srv/shop/venvs"
    for name in ("used", "unused", "fresh", ".pip"):
        (venvs / name).mkdir()
    (root / "srv/shop/releases" / D / ".venv").symlink_to("/srv/shop/venvs/used")
    (root / "srv/shop/releases" / C / ".venv").symlink_to("/srv/shop/venvs/unused")   # C is pruned first
    aged(root, home)
    age(venvs / "fresh", time.time())
    out, _, _ = run(root, home)
    assert sorted(os.listdir(venvs)) == [".pip", "fresh", "used"]   # the app's pip stays: every build runs it
    assert out["venvs"] == ["unused"]


def test_images_of_releases_no_longer_kept_go(root, home):
    aged(root, home)
    out, host, _ = run(root, home, docker=[A, C, "latest", E])
    assert sorted(out["images"]) == [C, E]
    assert ["docker", "image", "rm", "fdeploy-shop:" + C] in host.commands
    assert not any(c[:3] == ["docker", "image", "rm"] and c[3].endswith(A) for c in host.commands)


def test_no_docker_no_docker_call(root, home):
    aged(root, home)
    _, host, _ = run(root, home)
    assert not any(c[0] == "docker" for c in host.commands)


def test_old_uploads_go_but_this_bundle_and_the_migrations_in_force_stay(root, home):
    aged(root, home)
    age(home / "scripts-222222222222")
    out, _, _ = run(root, home)
    assert sorted(out["uploads"]) == ["migrations-m0", "scripts-111111111111"]
    assert sorted(os.listdir(home)) == ["migrations-m1", "scripts-222222222222", "uploads"]


def test_an_upload_used_this_hour_stays(root, home):
    aged(root, home)
    age(home / "scripts-111111111111", time.time() - 1800)
    run(root, home)
    assert (home / "scripts-111111111111").exists()


def test_bad_keep_count_names_the_setting(root, home):
    with pytest.raises(AgentError, match="flask-deploy:keepReleases"):
        run(root, home, keep="x")
