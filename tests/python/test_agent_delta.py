"""Delta uploads (delta.py): the client names the release it deployed before as the base and uploads
the files that release lacks (components/release-basis.ts, no SSH step); release-install assembles the
release from the upload, kept releases that verify and earlier uploads (each file checked by its hash)
in a temporary folder, checks it against the release id and only then puts it in place. A kept release
that no longer matches its id, or holds a link or a file someone else could write, is never used."""
import hashlib
import io
import json
import os
import stat
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
sys.path.insert(0, os.path.dirname(__file__))

from fdeploy_agent import cli, delta, install, release  # noqa: E402
from test_agent_install import Fake  # noqa: E402
from helpers import app_root  # noqa: E402

REQ = "flask==3.0.0\ngunicorn==22.0.0\n"
V1 = {"requirements.txt": REQ, "wsgi.py": "app = 1\n", "static/big.bin": "B" * 50000, "static/old.css": "old{}\n"}
# a changed, an added and a removed file
V2 = {"requirements.txt": REQ, "wsgi.py": "app = 2\n", "static/big.bin": "B" * 50000, "static/new.css": "new{}\n"}


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = app_root(tmp_path / "server", "srv/shop/releases", "srv/shop/shared", "run")
    monkeypatch.setattr(install, "uploads", lambda: str(tmp_path / "uploads"))
    return r


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(files):
    return {p: sha(t) for p, t in files.items()}


def write(folder, files):
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def rid_of(tmp_path, files):
    d = str(tmp_path / "hash-tmp")
    write(d, files)
    rid = release.tree_hash(d)
    install.remove(d)
    return rid


def call(fake, verb, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host())
    return rc, json.loads(out.getvalue()), err.getvalue()


def full_install(root, files):
    """FILES uploaded whole and installed, made the live release."""
    rid = rid_of(root.parent, files)
    write(str(root.parent / "uploads" / rid), files)
    rc, _, err = call(Fake(root), "release-install", {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0, err
    os.symlink("/srv/shop/releases/" + rid, str(root / "srv/shop/current"))
    return rid


def delta_upload(root, files, base, need):
    rid = rid_of(root.parent, files)
    up = str(root.parent / "uploads" / rid)
    write(up, {p: files[p] for p in need})
    with open(os.path.join(up, delta.DELTA_FILE), "w") as f:
        json.dump({"base": base, "manifest": manifest(files)}, f)
    return rid


def need_of(files, base_files):
    """What the client uploads against BASE_FILES (components/release-basis.ts basisOf): by content."""
    have = set(manifest(base_files).values())
    return sorted(p for p, h in manifest(files).items() if h not in have)


def install_of(root, rid):
    return call(Fake(root), "release-install", {"APP": "shop", "RELEASE_ID": rid})


def tree(dest):
    return {os.path.relpath(os.path.join(d, n), str(dest)) for d, _, ns in os.walk(str(dest)) for n in ns} - {release.MARKER, ".venv"}


def test_a_changed_an_added_and_a_removed_file_upload_only_the_changed_and_added(root):
    old = full_install(root, V1)
    need = need_of(V2, V1)
    assert need == ["static/new.css", "wsgi.py"]
    rid = delta_upload(root, V2, old, need)
    rc, res, err = install_of(root, rid)
    assert rc == 0, err
    assert "assembled from kept release %s: 2 files uploaded, 2 linked" % old in err
    dest = root / "srv/shop/releases" / rid
    assert tree(dest) == set(V2), "exactly the new tree: the removed file is gone"
    assert all((dest / p).read_text() == t for p, t in V2.items())
    # unchanged files are hard links to the base's (no copy), root-owned, not writable by others
    big = os.stat(str(dest / "static/big.bin"))
    assert big.st_ino == os.stat(str(root / "srv/shop/releases" / old / "static/big.bin")).st_ino
    assert stat.S_IMODE(big.st_mode) == 0o644
    # the assembled release verifies as a base itself
    assert delta.scan(str(dest)) == manifest(V2)
    # installed already: a second install (the same upload) changes nothing
    rc, res, err = install_of(root, rid)
    assert rc == 0 and res["action"] == "installed", err


@pytest.mark.parametrize("damage", ["content", "link", "group-writable", "extra-file"])
def test_a_kept_release_that_no_longer_verifies_is_never_used(root, damage):
    old = full_install(root, V1)
    base = root / "srv/shop/releases" / old
    if damage == "content":
        (base / "static/big.bin").write_text("C" * 50000)
    elif damage == "link":   # a link planted where a file was: never followed
        os.unlink(str(base / "static/old.css"))
        os.symlink("/etc/shadow", str(base / "static/old.css"))
    elif damage == "group-writable":
        os.chmod(str(base / "static"), 0o775)
    else:
        (base / "static/extra.txt").write_text("x")
    assert delta.scan(str(base)) is None
    install.remove(str(root.parent / "uploads" / old))   # its own upload would supply the files (checked by hash)
    rid = delta_upload(root, V2, old, need_of(V2, V1))
    rc, out, err = install_of(root, rid)
    assert rc != 0 and "kept release %s no longer matches its content hash" % old in err
    assert "requirements.txt is neither in its delta upload nor in a kept release" in out["error"]
    assert "-basis" in out["error"], "the error names the way out: a whole upload"
    assert os.listdir(str(root / "srv/shop/releases")) == [old], "no half-assembled release, no temporary folder"


def test_another_kept_release_that_verifies_supplies_what_a_changed_base_lacks(root):
    first = full_install(root, V1)
    os.unlink(str(root / "srv/shop/current"))
    live = full_install(root, dict(V1, **{"wsgi.py": "app = 9\n"}))
    (root / "srv/shop/releases" / live / "static/big.bin").write_text("corrupt")
    rid = delta_upload(root, V2, live, need_of(V2, V1))
    rc, _, err = install_of(root, rid)
    assert rc == 0, err
    assert os.stat(str(root / "srv/shop/releases" / rid / "static/big.bin")).st_ino == \
        os.stat(str(root / "srv/shop/releases" / first / "static/big.bin")).st_ino


def test_a_base_whose_install_failed_is_supplied_by_its_earlier_upload(root):
    """The previous up uploaded V2 as a delta and failed before its install (e.g. pip): the stack's
    state names V2 as the base of the next release V3, which the server never installed."""
    old = full_install(root, V1)
    v2 = delta_upload(root, V2, old, need_of(V2, V1))
    v3_files = dict(V2, **{"requirements.txt": REQ + "six==1.17.0\n"})
    rid = delta_upload(root, v3_files, v2, need_of(v3_files, V2))
    assert need_of(v3_files, V2) == ["requirements.txt"]
    rc, _, err = install_of(root, rid)
    assert rc == 0, err
    assert "1 files uploaded, 1 linked, 2 from earlier uploads" in err
    dest = root / "srv/shop/releases" / rid
    assert tree(dest) == set(v3_files) and all((dest / p).read_text() == t for p, t in v3_files.items())
    assert delta.scan(str(dest)) == manifest(v3_files)


def test_an_earlier_upload_whose_content_does_not_match_is_never_used(root):
    old = full_install(root, V1)
    v2 = delta_upload(root, V2, old, need_of(V2, V1))
    (root.parent / "uploads" / v2 / "wsgi.py").write_text("app = 666\n")
    v3_files = dict(V2, **{"requirements.txt": REQ + "six==1.17.0\n"})
    rid = delta_upload(root, v3_files, v2, need_of(v3_files, V2))
    rc, out, _ = install_of(root, rid)
    assert rc != 0 and "wsgi.py is neither in its delta upload" in out["error"]
    assert os.listdir(str(root / "srv/shop/releases")) == [old]


def test_an_assembled_tree_that_does_not_hash_to_the_id_never_goes_in_place(root):
    old = full_install(root, V1)
    rid = delta_upload(root, V2, old, ["static/new.css", "wsgi.py"])
    (root.parent / "uploads" / rid / "wsgi.py").write_text("overwritten meanwhile")
    rc, out, _ = install_of(root, rid)
    assert rc != 0 and "hashes to" in out["error"]
    assert os.listdir(str(root / "srv/shop/releases")) == [old]


def test_a_whole_upload_over_a_stale_delta_still_installs(root):
    old = full_install(root, V1)
    rid = delta_upload(root, V2, old, sorted(V2))   # the base then vanished; the next up sent everything
    install.remove(str(root / "srv/shop/releases" / old))
    rc, _, err = install_of(root, rid)
    assert rc == 0, err


@pytest.mark.parametrize("bad", [{"../x": "0" * 64}, {"/etc/x": "0" * 64}, {"a//b": "0" * 64}, {".venv": "0" * 64},
                                 {"a": "xyz"}, {}, "not an object"])
def test_a_bad_manifest_is_refused_before_anything(root, bad):
    old = full_install(root, V1)
    rid = "0" * 12
    up = root.parent / "uploads" / rid
    up.mkdir(parents=True)
    (up / delta.DELTA_FILE).write_text(json.dumps({"base": old, "manifest": bad}))
    rc, out, _ = install_of(root, rid)
    assert rc != 0 and "manifest" in out["error"].lower()
    assert os.listdir(str(root / "srv/shop/releases")) == [old]
