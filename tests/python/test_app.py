"""The sample app, via Flask's test client, on a DB migrated by migrate.py."""
import hashlib
import importlib
import re
import sys

import pytest

from helpers import APP_DIR, REAL_MIGRATIONS, last_line, run_migrate

pytest.importorskip("flask", reason="run tests/python/run.sh (it installs app/requirements.txt)")
sys.path.insert(0, str(APP_DIR))
from notes import ConfigError, create_app, get_db  # noqa: E402

SECRET = "test-secret-not-for-production"


@pytest.fixture
def env(db):
    p = run_migrate("up", db=db, dir=REAL_MIGRATIONS)
    assert p.returncode == 0, p.stderr
    assert last_line(p) == "schema_version=2"
    return {"DATABASE_PATH": str(db), "SECRET_KEY": SECRET, "RELEASE_ID": "r42",
            "APP_GREETING": "Hi <there>"}


@pytest.fixture
def client(env):
    return create_app(env).test_client()


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "release": "r42", "schema_version": 2}


def test_health_503_without_database(tmp_path):
    missing = tmp_path / "nope.db"
    app = create_app({"DATABASE_PATH": str(missing), "SECRET_KEY": SECRET})
    r = app.test_client().get("/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "error" and body["release"] == "dev" and body["error"]
    assert not missing.exists()  # the app never creates the DB


def test_health_503_without_schema(db):
    db.touch()  # a DB file that was never migrated
    r = create_app({"DATABASE_PATH": str(db), "SECRET_KEY": SECRET}).test_client().get("/health")
    assert r.status_code == 503 and "schema_migrations" in r.get_json()["error"]


def test_notes_roundtrip(client):
    assert client.get("/api/notes").get_json() == []
    r = client.post("/api/notes", json={"body": "first note"})
    assert r.status_code == 201
    note = r.get_json()
    assert note["id"] == 1 and note["body"] == "first note"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", note["created_at"])
    client.post("/api/notes", json={"body": "second"})
    assert [n["body"] for n in client.get("/api/notes").get_json()] == ["first note", "second"]


@pytest.mark.parametrize("payload", [None, {}, {"body": ""}, {"body": "  "}, {"body": 3}, ["x"]])
def test_notes_rejects_bad_body(client, payload):
    r = client.post("/api/notes", json=payload) if payload is not None else client.post("/api/notes")
    assert r.status_code == 400 and "error" in r.get_json()


def test_secret_fingerprint(client):
    r = client.get("/api/secret-fingerprint")
    assert r.get_json() == {"sha256": hashlib.sha256(SECRET.encode()).hexdigest()}
    assert SECRET not in r.get_data(as_text=True)


def test_index_page(client):
    client.post("/api/notes", json={"body": "x"})
    html = client.get("/").get_data(as_text=True)
    assert "Hi &lt;there&gt;" in html  # greeting is escaped
    assert '<strong id="note-count">1</strong>' in html and "r42" in html
    assert "/static/style.css" in html


def test_static_file(client):
    r = client.get("/static/style.css")
    assert r.status_code == 200 and "font-family" in r.get_data(as_text=True)
    r.close()


def test_connection_pragmas(env):
    app = create_app(env)
    with app.app_context():
        conn = get_db()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


@pytest.mark.parametrize("name", ["DATABASE_PATH", "SECRET_KEY"])
def test_required_settings(env, name):
    env[name] = ""
    with pytest.raises(ConfigError, match=name):
        create_app(env)


def test_wsgi_module_reads_environment(env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sys.modules.pop("wsgi", None)
    wsgi = importlib.import_module("wsgi")
    assert wsgi.app.config["RELEASE_ID"] == "r42"
    assert wsgi.app.test_client().get("/health").status_code == 200
