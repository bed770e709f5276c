"""shared-create (SharedPaths): the rendered files in the root-owned APP_ROOT/files and whether they
changed (the app restarts only then), the release's links and its manifest, links no longer
configured removed, refusals before anything changes, and the app user's steps inside shared/
(runuser as the app user, stood in for here by the same operations under the temporary root)."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

RID = "a" * 12
GID = os.getgid()


def as_user(root, fail=""):
    """runuser -u shop -- mkdir|touch|ln …, done under ROOT (the last argument is a server path);
    FAIL: a command that fails (e.g. the app user may not write there)."""
    def run(argv, merge_output=False, input=None):
        assert argv[:4] == ["runuser", "-u", "shop", "--"] and os.umask(0o022) == 0o007, argv
        cmd = argv[4:]
        if cmd[0] == fail:
            return subprocess.CompletedProcess(argv, 1, "%s: Permission denied" % cmd[0], "")
        last = str(root) + cmd[-1]
        if cmd[0] == "mkdir":
            os.makedirs(last, exist_ok=True)
        elif cmd[0] == "touch":
            open(last, "a").close()
        elif cmd[0] == "ln":
            if os.path.lexists(last):
                os.unlink(last)
            os.symlink(cmd[-2], last)
        return subprocess.CompletedProcess(argv, 0, "", "")
    return run


def verb(root, name, params, fail="", commands=None):
    host = Host(root=str(root), user_ids=lambda name: (0, GID), run=as_user(root, fail))
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([name], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    if commands is not None:
        commands.extend(host.commands)
    return rc, json.loads(out.getvalue()), err.getvalue()


@pytest.fixture
def root(tmp_path):
    r = app_root(tmp_path, "srv/shop/releases/%s/instance" % RID, "srv/shop/shared", "run")
    (r / "srv/shop/releases" / RID / ".fdeploy-release.json").write_text("{}\n")
    return r


def params(dirs, files):
    return {"APP": "shop", "RELEASE_ID": RID, "DIRS": json.dumps(dirs), "FILES": json.dumps(files)}


FILES = [{"path": "instance/config.py", "content": "SECRET = 's'\n"}, {"path": "conf/app.ini", "content": "[app]\n"},
         {"path": "uploads.log", "content": None}]


def test_render_link_and_changed_only_when_content_changes(root):
    rel = root / "srv/shop/releases" / RID
    (rel / "instance").rmdir()
    rc, out, err = verb(root, "shared-create", params(["instance"], FILES))
    assert rc == 0, err
    assert out["changed"] is True and out["revision"].isdigit()
    files = root / "srv/shop/files"
    assert (files / "instance/config.py").read_text() == "SECRET = 's'\n"
    assert oct(files.stat().st_mode & 0o777) == "0o750" and oct((files / "conf/app.ini").stat().st_mode & 0o777) == "0o640"
    assert os.readlink(rel / "instance") == "/srv/shop/shared/instance"
    assert os.readlink(rel / "conf/app.ini") == "/srv/shop/files/conf/app.ini"
    assert os.readlink(rel / "uploads.log") == "/srv/shop/shared/uploads.log"
    assert not os.path.lexists(rel / "instance/config.py")   # inside a shared dir: the app user's link
    assert (rel / ".fdeploy-shared").read_text() == "instance\nconf/app.ini\nuploads.log\n"
    # the same again: nothing changed (a second up restarts nothing)
    assert verb(root, "shared-create", params(["instance"], FILES))[1] == {"changed": False, "revision": "", "ok": True,
                                                                             "summary": "1 dirs, 3 files"}
    # a changed content: changed; a file no longer configured: removed, its release link too
    files2 = [dict(FILES[0], content="SECRET = 't'\n"), FILES[2]]
    out = verb(root, "shared-create", params(["instance"], files2))[1]
    assert out["changed"] is True
    assert not (files / "conf/app.ini").exists() and not os.path.lexists(rel / "conf/app.ini")
    assert (rel / ".fdeploy-shared").read_text() == "instance\nuploads.log\n"
    out = verb(root, "shared-create", params(["instance"], [FILES[2]]))[1]
    assert out["changed"] is True and not (files / "instance/config.py").exists()


def test_the_app_user_steps(root):
    (root / "srv/shop/releases" / RID / "instance").rmdir()
    commands = []
    files = FILES + [{"path": "data/own.db", "content": None}]
    rc, out, err = verb(root, "shared-create", params(["instance", "data"], files), commands=commands)
    assert rc == 0, err
    assert out["summary"] == "2 dirs, 4 files"
    assert [c[4:] for c in commands] == [
        ["mkdir", "-p", "-m", "0770", "/srv/shop/shared/instance"], ["mkdir", "-p", "-m", "0770", "/srv/shop/shared/data"],
        ["mkdir", "-p", "-m", "0770", "/srv/shop/shared/instance"],
        ["ln", "-sfn", "/srv/shop/files/instance/config.py", "/srv/shop/shared/instance/config.py"],
        ["mkdir", "-p", "-m", "0770", "/srv/shop/shared"], ["touch", "/srv/shop/shared/uploads.log"]]
    assert os.readlink(root / "srv/shop/shared/instance/config.py") == "/srv/shop/files/instance/config.py"
    assert (root / "srv/shop/shared/uploads.log").is_file() and os.umask(0o022) == 0o022   # root's umask back
    commands.clear()
    assert verb(root, "shared-create", params([], []), commands=commands)[0] == 0 and commands == []


def test_a_step_the_app_user_cannot_do_fails_naming_it(root):
    (root / "srv/shop/releases" / RID / "instance").rmdir()
    rc, out, _ = verb(root, "shared-create", params(["instance"], []), fail="mkdir")
    assert rc == 1 and out["error"].startswith("could not create shared/instance as shop (flask-deploy:sharedDirs/sharedFiles): mkdir: Permission denied")


@pytest.mark.parametrize("dirs,files,message", [
    (["../etc"], [], "bad shared path '../etc'"),
    (["a/./b"], [], "bad shared path"),
    ([], [{"path": "/abs", "content": "x"}], "bad shared path '/abs'"),
    ([], [{"content": "x"}], "bad shared paths"),
    ("{}", [], "DIRS must be a JSON list"),
    ([], [{"path": "x", "content": 3}], "content must be text"),
])
def test_bad_input_is_refused_before_anything_changes(root, dirs, files, message):
    p = params(dirs, files)
    if isinstance(dirs, str):
        p["DIRS"] = dirs
    rc, out, _ = verb(root, "shared-create", p)
    assert rc == 1 and message in out["error"]
    assert not (root / "srv/shop/files").exists()


def test_a_shipped_path_or_a_path_through_a_link_is_refused(root):
    rel = root / "srv/shop/releases" / RID
    (rel / "settings.py").write_text("x")
    rc, out, _ = verb(root, "shared-create", params([], [{"path": "settings.py", "content": "y"}]))
    assert rc == 1 and "the release ships 'settings.py'" in out["error"]
    assert not (root / "srv/shop/files").exists()   # refused before anything changed
    (rel / "instance").rmdir()
    (rel / "instance").symlink_to(root / "srv/shop/shared")   # e.g. an earlier shared dir: the app's folder
    rc, out, _ = verb(root, "shared-create", params([], [{"path": "instance/x.py", "content": None}]))
    assert rc == 1 and "'instance/x.py' is not inside the release" in out["error"]
    assert not (root / "srv/shop/shared/x.py").exists()


def test_an_uninstalled_release_is_refused(root):
    (root / "srv/shop/releases" / RID / ".fdeploy-release.json").unlink()
    rc, out, _ = verb(root, "shared-create", params([], []))
    assert rc == 1 and "is not installed" in out["error"]
