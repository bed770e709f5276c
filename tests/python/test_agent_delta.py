"""Delta uploads (delta.py): release-base names a kept release that verifies and the files it lacks;
release-install assembles a delta upload from that base in a temporary folder, checks it against the
release id and only then puts it in place. A kept release that no longer matches its id, or holds a
link or a file someone else could write, is never a base."""
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


def base_of(root, files):
    rid = rid_of(root.parent, files)
    return call(Fake(root), "release-base", {"APP": "shop", "RELEASE_ID": rid, "MANIFEST": json.dumps(manifest(files))})


def test_a_changed_an_added_and_a_removed_file_upload_only_the_changed_and_added(root):
    old = full_install(root, V1)
    rc, out, err = base_of(root, V2)
    assert rc == 0, err
    assert (out["base"], out["need"], out["installed"]) == (old, ["static/new.css", "wsgi.py"], False)
    assert "uploading 2 of 4 files; the rest from kept release %s" % old in err
    rid = delta_upload(root, V2, out["base"], out["need"])
    rc, res, err = call(Fake(root), "release-install", {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0, err
    assert "assembled from kept release %s: 2 files uploaded, 2 linked" % old in err
    dest = root / "srv/shop/releases" / rid
    got = {os.path.relpath(os.path.join(d, n), str(dest)) for d, _, ns in os.walk(str(dest)) for n in ns} - {release.MARKER, ".venv"}
    assert got == set(V2), "exactly the new tree: the removed file is gone"
    assert all((dest / p).read_text() == t for p, t in V2.items())
    # unchanged files are hard links to the base's (no copy), root-owned, not writable by others
    big = os.stat(str(dest / "static/big.bin"))
    assert big.st_ino == os.stat(str(root / "srv/shop/releases" / old / "static/big.bin")).st_ino
    assert stat.S_IMODE(big.st_mode) == 0o644
    # the assembled release verifies as a base itself
    assert delta.scan(str(dest)) == manifest(V2)
    rc, out, _ = base_of(root, V2)
    assert out["installed"] is True and out["need"] == []


@pytest.mark.parametrize("damage", ["content", "link", "group-writable", "extra-file"])
def test_a_kept_release_that_no_longer_verifies_is_never_a_base(root, damage):
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
    rc, out, err = base_of(root, V2)
    assert rc == 0, err
    assert out["base"] == "" and out["need"] == sorted(V2), "everything is uploaded"
    assert "kept release %s no longer matches its content hash" % old in err


def test_an_older_kept_release_that_verifies_is_the_base_when_the_live_one_does_not(root):
    first = full_install(root, V1)
    os.unlink(str(root / "srv/shop/current"))
    live = full_install(root, dict(V1, **{"wsgi.py": "app = 9\n"}))
    (root / "srv/shop/releases" / live / "static/big.bin").write_text("corrupt")
    os.link(str(root / "srv/shop/releases" / first / "static/old.css"), str(root.parent / "keep"))   # unrelated
    rc, out, err = base_of(root, V2)
    assert rc == 0 and out["base"] == first, err


def test_a_deleted_base_means_a_whole_upload(root):
    old = full_install(root, V1)
    install.remove(str(root / "srv/shop/releases" / old))
    rc, out, _ = base_of(root, V2)
    assert rc == 0 and out["base"] == "" and out["need"] == sorted(V2)


def test_a_delta_whose_base_went_away_is_refused_and_nothing_is_left(root):
    old = full_install(root, V1)
    rid = delta_upload(root, V2, old, ["static/new.css", "wsgi.py"])
    (root / "srv/shop/releases" / old / "static/big.bin").write_text("changed after release-base")
    rc, out, err = call(Fake(root), "release-install", {"APP": "shop", "RELEASE_ID": rid})
    assert rc != 0 and "is gone or no longer matches its content hash" in out["error"]
    releases = os.listdir(str(root / "srv/shop/releases"))
    assert releases == [old], "no half-assembled release, no temporary folder"


def test_an_assembled_tree_that_does_not_hash_to_the_id_never_goes_in_place(root):
    old = full_install(root, V1)
    rid = delta_upload(root, V2, old, ["static/new.css", "wsgi.py"])
    (root.parent / "uploads" / rid / "wsgi.py").write_text("overwritten meanwhile")
    rc, out, _ = call(Fake(root), "release-install", {"APP": "shop", "RELEASE_ID": rid})
    assert rc != 0 and "hashes to" in out["error"]
    assert os.listdir(str(root / "srv/shop/releases")) == [old]


def test_a_whole_upload_over_a_stale_delta_still_installs(root):
    old = full_install(root, V1)
    rid = delta_upload(root, V2, old, sorted(V2))   # the base then vanished; the next up sent everything
    install.remove(str(root / "srv/shop/releases" / old))
    rc, _, err = call(Fake(root), "release-install", {"APP": "shop", "RELEASE_ID": rid})
    assert rc == 0, err


@pytest.mark.parametrize("bad", [{"../x": "0" * 64}, {"/etc/x": "0" * 64}, {"a//b": "0" * 64}, {".venv": "0" * 64},
                                 {"a": "xyz"}, {}, "not json"])
def test_a_bad_manifest_is_refused_before_anything(root, bad):
    rc, out, _ = call(Fake(root), "release-base", {"APP": "shop", "RELEASE_ID": "0" * 12,
                                                   "MANIFEST": bad if isinstance(bad, str) else json.dumps(bad)})
    assert rc != 0 and "manifest" in out["error"].lower()
