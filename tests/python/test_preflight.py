"""preflight.py (components/scripts): loads a WSGI target the way Gunicorn does and GETs the health
path once. Exit 0 ok, 1 does not load, 2 the health path answers 4xx, 3 a factory without ()."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFLIGHT = ROOT / "components" / "scripts" / "preflight.py"
TUTORIAL = ROOT / "tests" / "e2e" / "fixtures" / "tutorial-app"

APP = '''
def app(environ, start_response):
    code = "200 OK" if environ["PATH_INFO"] == "/health" else "404 Not Found"
    start_response(code, [("Content-Type", "text/plain")])
    return [b"ok"]

def create_app(name="x"):
    return app

def make(env, debug=False):
    assert env == "prod" and debug is True
    return app
'''


def run(cwd, target, path="/health"):
    return subprocess.run([sys.executable, str(PREFLIGHT), target, path], cwd=cwd, capture_output=True, text=True)


def test_gunicorn_forms(tmp_path):
    (tmp_path / "m.py").write_text(APP)
    for target in ["m:app", "m:create_app()", "m:make('prod', debug=True)"]:
        r = run(tmp_path, target)
        assert r.returncode == 0, (target, r.stderr)
        assert "GET /health: HTTP 200" in r.stdout


def test_a_factory_without_parentheses_is_named(tmp_path):
    (tmp_path / "m.py").write_text(APP)
    r = run(tmp_path, "m:create_app")
    assert r.returncode == 3
    assert "set appModule to m:create_app()" in r.stderr


def test_a_4xx_health_path(tmp_path):
    (tmp_path / "m.py").write_text(APP)
    r = run(tmp_path, "m:app", "/nope")
    assert r.returncode == 2
    assert "HTTP 404" in r.stderr


def test_code_that_does_not_load(tmp_path):
    (tmp_path / "m.py").write_text("raise RuntimeError('broken on purpose')\n")
    r = run(tmp_path, "m:app")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "RuntimeError: broken on purpose"


def test_the_tutorial_app(tmp_path):
    app = tmp_path / "app"  # a copy: its factory creates the instance folder
    shutil.copytree(TUTORIAL, app)
    r = run(app, "flaskr:create_app()", "/hello")
    assert r.returncode == 0, r.stderr
    assert run(app, "flaskr:create_app", "/hello").returncode == 3


def test_the_units_gunicorn_options_are_checked_by_the_installed_gunicorn(tmp_path):
    (tmp_path / "m.py").write_text(APP)
    ok = subprocess.run([sys.executable, str(PREFLIGHT), "m:app", "/health", "--workers", "2", "--no-control-socket"],
                        cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, str(PREFLIGHT), "m:app", "/health", "--workers", "2", "--no-such-option"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 4
    last = bad.stderr.strip().splitlines()[-1]
    assert "refuses the options" in last and "--no-such-option" in last and "requirements.txt" in last


def test_load_only_makes_no_request(tmp_path):
    (tmp_path / "m.py").write_text(APP + "\nimport os\n_app = app\ndef app(e, s):\n    open('requested', 'w').close()\n    return _app(e, s)\n")
    r = run(tmp_path, "m:app", "-")
    assert r.returncode == 0 and "loads m:app" in r.stdout
    assert not (tmp_path / "requested").exists(), "the preflight before the release commands requested a route"
