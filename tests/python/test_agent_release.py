"""release-hash: the server's hash of a copied release is the id components/upload.ts gave it (the
same files, paths and order), so an upload cut short or changed meanwhile is never installed."""
import os
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
