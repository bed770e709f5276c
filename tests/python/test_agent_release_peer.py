"""A rollback on a fleet to a release a later-joined host never ran (agent release_peer.py): the first host's kept
release exported as its upload held it (no .venv, marker or shared/ links), imported on the host into its uploads
only when it lacks the release, checked against the release id (its files' hash); release-copy asks first."""
import json
import os
import pathlib
import sys
import types

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import install, release, release_peer  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

SHOP = {"APP": "shop"}


def kept_release(root):
    """Release files on ROOT's /srv/shop/releases/<id>, installed (marker, .venv, a shared/ link): its id."""
    src = root / "src"
    (src / "static").mkdir(parents=True)
    (src / "wsgi.py").write_text("app = 1\n")
    (src / "requirements.txt").write_text("gunicorn\n")
    (src / "static" / "a.css").write_text("a {}\n")
    os.symlink("wsgi.py", str(src / "main.py"))
    rid = release.tree_hash(str(src))
    dest = root / "srv/shop/releases" / rid
    dest.parent.mkdir(parents=True)
    os.rename(str(src), str(dest))
    (dest / release.MARKER).write_text("{}")
    os.symlink("/srv/shop/venvs/abc", str(dest / ".venv"))
    os.symlink("/srv/shop/shared/instance", str(dest / "instance"))
    return rid


@pytest.fixture
def hosts(tmp_path, monkeypatch):
    first, joined = app_root(tmp_path / "h1"), app_root(tmp_path / "h3")
    monkeypatch.setattr(install, "uploads", lambda: str(tmp_path / "h3-uploads"))
    return types.SimpleNamespace(first=Host(root=str(first)), joined=Host(root=str(joined)), rid=kept_release(first), uploads=tmp_path / "h3-uploads")


def test_a_release_the_host_never_ran_is_copied_from_the_first_host_as_its_upload_checked_by_its_id(hosts):
    p = dict(SHOP, RELEASE_ID=hosts.rid)
    assert release_peer.release_import(hosts.joined, dict(p, CHECK=1), print, 0) == {"action": "missing"}
    got = release_peer.release_export(hosts.first, p, print, 0)
    assert sorted(f[0] for f in got["files"]) == ["requirements.txt", "static/a.css", "wsgi.py"]
    assert got["links"] == [["main.py", "wsgi.py"]], "the release's own link kept; .venv, marker and shared/ links left out"
    assert release_peer.release_import(hosts.joined, dict(p, FILES=got["files"], LINKS=got["links"]), print, 0) == {"action": "copied"}
    up = hosts.uploads / hosts.rid
    assert release.tree_hash(str(up)) == hosts.rid and (up / "static/a.css").read_text() == "a {}\n"
    assert release.plan(hosts.joined, release_peer.apps.load(hosts.joined, "shop"), hosts.rid, "python", True, str(up))["action"] == "copy"
    assert release_peer.release_import(hosts.joined, dict(p, CHECK=1), print, 0) == {"action": "uploaded"}, "asked again: nothing to copy"


def test_a_host_that_keeps_the_release_gets_nothing(hosts):
    root = pathlib.Path(hosts.joined.root)
    assert kept_release(root) == hosts.rid
    (root / "srv/shop/venvs/abc/bin").mkdir(parents=True)
    (root / "srv/shop/venvs/abc/bin/gunicorn").write_text("")
    os.chmod(str(root / "srv/shop/venvs/abc/bin/gunicorn"), 0o755)
    assert release_peer.release_import(hosts.joined, dict(SHOP, RELEASE_ID=hosts.rid, CHECK=1), print, 0) == {"action": "kept"}
    assert release_peer.release_import(hosts.joined, dict(SHOP, RELEASE_ID=hosts.rid, FILES=[], LINKS=[]), print, 0) == {"action": "kept"}


def test_files_that_do_not_hash_to_the_release_are_not_installed(hosts):
    got = release_peer.release_export(hosts.first, dict(SHOP, RELEASE_ID=hosts.rid), print, 0)
    got["files"][0][2] = "Y2hhbmdlZA=="   # "changed"
    with pytest.raises(AgentError, match="hashes to [0-9a-f]{12}, not to its id: not installed"):
        release_peer.release_import(hosts.joined, dict(SHOP, RELEASE_ID=hosts.rid, FILES=got["files"], LINKS=got["links"]), print, 0)
    assert not (hosts.uploads / hosts.rid).exists() and os.listdir(str(hosts.uploads)) == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_a_path_outside_the_release_is_refused(hosts, bad):
    with pytest.raises(AgentError, match="bad path"):
        release_peer.release_import(hosts.joined, dict(SHOP, RELEASE_ID=hosts.rid, FILES=[[bad, 0o644, ""]], LINKS=[]), print, 0)


def test_the_first_host_must_keep_the_release(hosts):
    with pytest.raises(AgentError, match="release 0123456789ab is not kept on this host either \\(kept: %s\\)" % hosts.rid):
        release_peer.release_export(hosts.first, dict(SHOP, RELEASE_ID="0123456789ab"), print, 0)


def test_release_copy_asks_the_host_first_and_copies_only_what_it_lacks(hosts, tmp_path):
    calls = []
    answers = {"release-import": [{"action": "missing"}, {"action": "copied"}], "release-export": [{"files": [["wsgi.py", 420, ""]], "links": []}]}

    def run(argv, input=None, **kw):
        verb = argv[-1].split()[-1]
        calls.append((argv[-2], verb, sorted(json.loads(input))))
        return types.SimpleNamespace(returncode=0, stdout=json.dumps(answers[verb].pop(0)), stderr="")
    t = {"user": "root", "port": 22, "hostKey": "ssh-ed25519 AAAA"}
    params = dict(SHOP, RELEASE_ID=hosts.rid, FROM={"address": "10.0.0.1", "ssh": dict(t, host="10.0.0.1"), "export": "agent release-export"},
                  TO={"address": "10.0.0.3", "ssh": dict(t, host="10.0.0.3"), "import": "agent release-import"})
    logs = []
    assert release_peer.release_copy(Host(root=str(tmp_path), run=run), params, logs.append, 0) == {"action": "copied", "files": 1}
    assert calls == [("root@10.0.0.3", "release-import", ["APP", "CHECK", "RELEASE_ID"]), ("root@10.0.0.1", "release-export", ["APP", "RELEASE_ID"]),
                     ("root@10.0.0.3", "release-import", ["APP", "FILES", "LINKS", "RELEASE_ID"])]
    assert any("copied from 10.0.0.1 to 10.0.0.3" in line for line in logs)
    answers["release-import"] = [{"action": "kept"}]
    calls.clear()
    assert release_peer.release_copy(Host(root=str(tmp_path), run=run), params, logs.append, 0) == {"action": "kept"}
    assert [c[1] for c in calls] == ["release-import"], "a host that keeps it: one question, nothing copied"


def test_release_copy_under_docker_refuses_a_release_the_host_never_ran_before_anything_changes(hosts, tmp_path):
    calls = []

    def run(argv, input=None, **kw):
        calls.append(argv[-1].split()[-1])
        return types.SimpleNamespace(returncode=0, stdout=json.dumps({"action": "missing" if len(calls) == 1 else "kept"}), stderr="")
    t = {"user": "root", "port": 22, "hostKey": "ssh-ed25519 AAAA"}
    params = dict(SHOP, RELEASE_ID=hosts.rid, RUNTIME="docker", FROM={"address": "10.0.0.1", "ssh": dict(t, host="10.0.0.1"), "export": "agent release-export"},
                  TO={"address": "10.0.0.3", "ssh": dict(t, host="10.0.0.3"), "import": "agent release-import"})
    with pytest.raises(AgentError) as e:
        release_peer.release_copy(Host(root=str(tmp_path), run=run), params, print, 0)
    first = str(e.value).splitlines()[0]
    assert first.startswith("release %s never ran on 10.0.0.3 and runtime docker cannot copy its image there yet" % hosts.rid) and len(first) < 160
    assert calls == ["release-import"], "asked, nothing exported or imported"
    # a host that keeps it (its image with it): as under python
    assert release_peer.release_copy(Host(root=str(tmp_path), run=run), params, print, 0) == {"action": "kept"}
