"""release.py: the server's hash of a copied release is the id components/upload.ts gave it (the
same files, paths and order), so an upload cut short or changed meanwhile is never installed; and
release-install's decisions (install.py): plan, venv_plan, write_mark."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent.release import tree_hash  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_the_same_hash_as_the_upload(tmp_path):
    (tmp_path / "pkg/static").mkdir(parents=True)
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    (tmp_path / "pkg/static/app.css").write_bytes(b"body{}\x00\xff")
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "requirements.txt").write_text("flask\n")
    js = "console.log(require('./components/upload').hashFiles(process.argv[1]))"
    r = subprocess.run(["node", "-r", "./scripts/ts-register.js", "-e", js, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert tree_hash(str(tmp_path)) == r.stdout.strip()
    (tmp_path / "wsgi.py").write_text("app = 2\n")
    assert tree_hash(str(tmp_path)) != r.stdout.strip()


# --- release-install's decisions (release.sh's before the port) ---
import json  # noqa: E402

import pytest  # noqa: E402

from fdeploy_agent import release  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

APP = App(name="shop", root="/srv/shop", user="shop")
VV = "Python 3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]\n"
RID, OLD = "a" * 12, "b" * 12


def fake_host(root, vv=VV):
    def run(argv, merge_output=False):
        return subprocess.CompletedProcess(argv, 0, vv if argv == ["python3", "-VV"] else "", "")
    return Host(root=str(root), run=run)


def venv(root, vv=VV):
    """What release-install builds for release RID (install.py: venv_plan with the server's python3 -VV)."""
    host = fake_host(root, vv)
    return release.venv_plan(host, APP, RID, release.python_vv(host))


def make_venv(root, key, version="3.11.2", built=True):
    v = root / "srv/shop/venvs" / key
    (v / "bin").mkdir(parents=True)
    (v / "bin/gunicorn").write_text("#!/bin/sh\n")
    (v / "bin/gunicorn").chmod(0o755)
    (v / "pyvenv.cfg").write_text("home = /usr/bin\nversion = %s\n" % version)
    if built:
        (v / ".fdeploy-built").write_text("")
    return "/srv/shop/venvs/" + key


def make_release(root, rid, requirements="flask==3.0.0\ngunicorn==22.0.0\n", venv=None, marker=True):
    r = root / "srv/shop/releases" / rid
    r.mkdir(parents=True)
    (r / "requirements.txt").write_text(requirements)
    if venv:
        (r / ".venv").symlink_to(venv)
    if marker:
        (r / ".fdeploy-release.json").write_text("{}\n")
    return r


@pytest.fixture
def root(tmp_path):
    return app_root(tmp_path, "srv/shop/releases", "srv/shop/venvs")


def test_the_venv_key_is_release_sh_s(tmp_path):
    """Upgrade in place: the agent names an unchanged release's venv as release.sh did, so a server
    deployed by the previous main reuses its venvs (nothing is rebuilt)."""
    req = tmp_path / "requirements.txt"
    req.write_bytes(b"flask==3.0.0\n# a comment\ngunicorn\xc3\xa9==22\n")   # no final newline matters too
    bash = subprocess.run(["bash", "-c", '{ cat "$1"; python3 -VV; } | sha256sum | cut -c1-12', "-", str(req)],
                          capture_output=True, text=True, check=True).stdout.strip()
    vv = subprocess.run(["python3", "-VV"], capture_output=True, text=True, check=True).stdout
    assert release.venv_key(req.read_bytes(), vv) == bash
    req.write_bytes(b"flask==3.0.0")
    bash = subprocess.run(["bash", "-c", '{ cat "$1"; python3 -VV; } | sha256sum | cut -c1-12', "-", str(req)],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert release.venv_key(req.read_bytes(), vv) == bash


def test_release_venv_reuses_the_built_venv_of_the_same_requirements(root):
    key = release.venv_key(b"flask==3.0.0\ngunicorn==22.0.0\n", VV)
    make_venv(root, key)
    make_release(root, RID, marker=False)
    out = venv(root)
    assert out["venv"] == "/srv/shop/venvs/" + key and out["built"] is True and out["seed"] == ""
    assert out["pipvenv"] == "/srv/shop/venvs/.pip" and out["pip_built"] is False
    # another Python: another venv, not built
    out = venv(root, vv=VV.replace("3.11.2", "3.11.9"))
    assert out["built"] is False and out["venv"] != "/srv/shop/venvs/" + key


def live(root, requirements, version="3.11.2", key="0123456789ab"):
    venv = make_venv(root, key, version=version)
    make_release(root, OLD, requirements, venv=venv)
    (root / "srv/shop/current").symlink_to("/srv/shop/releases/" + OLD)
    return venv


@pytest.mark.parametrize("old,new,seeded", [
    ("flask==3.0.0\ngunicorn\n", "flask==3.0.0\ngunicorn\nsix==1.16.0\n", True),                 # a line added
    ("flask==3.0.0  # web\ngunicorn\n", "gunicorn\n\n  flask==3.0.0\nsix\n", True),              # order, comments, blanks
    ("flask==3.0.0\ngunicorn\n", "flask==3.0.1\ngunicorn\nsix\n", False),                        # a line changed
    ("flask==3.0.0\ngunicorn\nsix\n", "flask==3.0.0\ngunicorn\n", False),                        # a line removed
    ("flask==3.0.0\ngunicorn\n", "flask==3.0.0\ngunicorn\n-e ./lib\n", False),                   # an option
    ("flask==3.0.0\ngunicorn\n", "flask==3.0.0\ngunicorn\nlib @ file:///x\n", False),            # a reference
    ("flask\n-r base.txt\n", "flask\n-r base.txt\nsix\n", False),                                 # the live one has an option
])
def test_the_seed_is_the_live_venv_only_when_plain_lines_are_added(root, old, new, seeded):
    live_venv = live(root, old)
    make_release(root, RID, new, marker=False)
    out = venv(root)
    assert out["built"] is False
    assert out["seed"] == (live_venv if seeded else "")


def test_no_seed_from_another_python_an_unbuilt_venv_or_nothing_live(root):
    make_release(root, RID, "flask\ngunicorn\nsix\n", marker=False)
    assert venv(root)["seed"] == ""        # nothing live
    live(root, "flask\ngunicorn\n", version="3.9.2")
    assert venv(root)["seed"] == ""        # another Python
    (root / "srv/shop/venvs/0123456789ab/pyvenv.cfg").write_text("version_info = 3.11.2\n")
    assert venv(root)["seed"] != ""        # version_info counts
    (root / "srv/shop/venvs/0123456789ab/.fdeploy-built").unlink()
    assert venv(root)["seed"] == ""        # half built


def test_a_release_without_requirements_is_refused_by_name(root):
    (root / "srv/shop/releases" / RID).mkdir()
    with pytest.raises(AgentError, match="has no requirements.txt"):
        venv(root)


def test_plan_installed_copy_or_venv(root, tmp_path):
    upload = tmp_path / "uploads" / RID
    upload.mkdir(parents=True)
    host = fake_host(root)
    assert release.plan(host, APP, RID, "python", False, str(upload)) == {"action": "copy"}
    r = make_release(root, RID)   # the docker runtime's install: a marker, no venv
    assert release.plan(host, APP, RID, "docker", False, str(upload)) == {"action": "installed"}
    assert release.plan(host, APP, RID, "python", False, str(upload)) == {"action": "venv"}
    (r / ".venv").symlink_to(make_venv(root, "0123456789ab"))
    assert release.plan(host, APP, RID, "python", False, str(upload)) == {"action": "installed"}
    (r / ".fdeploy-release.json").unlink()   # half installed: redone
    assert release.plan(host, APP, RID, "python", False, str(upload)) == {"action": "copy"}


def test_plan_refuses_a_pinned_release_not_kept_and_a_missing_upload(root, tmp_path):
    make_release(root, OLD)
    host = fake_host(root)
    with pytest.raises(AgentError, match=r"release a{12} \(pinned .*not kept on this server \(kept: b{12}\)\n.*pulumi config rm release"):
        release.plan(host, APP, RID, "python", True, str(tmp_path / "none"))
    with pytest.raises(AgentError, match="upload .* is missing"):
        release.plan(host, APP, RID, "python", False, str(tmp_path / "none"))


def test_bad_parameters_are_refused():
    with pytest.raises(AgentError, match="bad release id"):
        release.check_id("../../etc")
    with pytest.raises(AgentError, match="bad runtime"):
        release.check_runtime("java")
    assert release.check_runtime(None) == "python"


def test_mark_writes_the_marker_release_sh_wrote(root):
    r = make_release(root, RID, marker=False)
    release.write_mark(fake_host(root), APP, RID, "python", 7)
    mark = json.loads((r / ".fdeploy-release.json").read_text())
    assert mark["id"] == RID and mark["install_seconds"] == 7 and "runtime" not in mark
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", mark["installed_at"])
    assert oct((r / ".fdeploy-release.json").stat().st_mode & 0o777) == "0o644"
    release.write_mark(fake_host(root), APP, RID, "docker", 1)
    assert json.loads((r / ".fdeploy-release.json").read_text())["runtime"] == "docker"
