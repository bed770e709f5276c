"""A small notes app: Flask + SQLite, configured only by environment variables.

The schema is owned by migrations/ (applied by components/scripts/migrate.py);
this code never creates tables.
"""
import hashlib
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from flask import Flask, current_app, g, jsonify, render_template, request

# Static files live in app/static (beside wsgi.py) so nginx can serve that
# directory directly at /static/ without knowing about the Python package.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MAX_BODY_CHARS = 10_000


class ConfigError(RuntimeError):
    """A required environment variable is missing or empty."""


def _required(env, name, hint):
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set: {hint} (systemd passes it from the stack's env/secrets config)")
    return value


def create_app(env=None):
    """Build the app from `env` (default: os.environ)."""
    env = os.environ if env is None else env
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.config.update(
        DATABASE_PATH=_required(env, "DATABASE_PATH", "path of the SQLite database file"),
        SECRET_KEY=_required(env, "SECRET_KEY", "a long random string"),
        RELEASE_ID=env.get("RELEASE_ID") or "dev",
        APP_GREETING=env.get("APP_GREETING") or "Hello from Notes",
    )
    app.teardown_appcontext(_close_db)
    _register_routes(app)
    return app


def get_db():
    """One connection per request, opened lazily."""
    if "db" not in g:
        path = current_app.config["DATABASE_PATH"]
        # mode=rw: never create the database file; a missing DB is a deploy
        # error that /health must report, not something to paper over.
        conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA busy_timeout=5000")  # first, so the next ones wait too
            conn.execute("PRAGMA journal_mode=WAL")  # no-op once the file is in WAL mode
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            conn.close()
            raise
        g.db = conn
    return g.db


def _close_db(_exc):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def _note(row):
    return {"id": row["id"], "body": row["body"], "created_at": row["created_at"]}


def _register_routes(app):
    cfg = app.config

    @app.get("/health")
    def health():
        try:
            version = get_db().execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        except sqlite3.Error as e:
            return jsonify(status="error", release=cfg["RELEASE_ID"], error=str(e)), 503
        return jsonify(status="ok", release=cfg["RELEASE_ID"], schema_version=version or 0)

    @app.get("/")
    def index():
        count = get_db().execute("SELECT count(*) FROM notes").fetchone()[0]
        return render_template(
            "index.html", greeting=cfg["APP_GREETING"], release=cfg["RELEASE_ID"], count=count
        )

    @app.get("/api/notes")
    def list_notes():
        rows = get_db().execute("SELECT id, body, created_at FROM notes ORDER BY id").fetchall()
        return jsonify([_note(r) for r in rows])

    @app.post("/api/notes")
    def create_note():
        data = request.get_json(silent=True)
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body.strip():
            return jsonify(error='expected JSON {"body": "<non-empty text>"}'), 400
        if len(body) > MAX_BODY_CHARS:
            return jsonify(error=f"body is longer than {MAX_BODY_CHARS} characters"), 400
        db = get_db()
        row = db.execute(
            "INSERT INTO notes (body, created_at)"
            " VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            " RETURNING id, body, created_at",
            (body,),
        ).fetchone()
        db.commit()
        return jsonify(_note(row)), 201

    @app.get("/api/secret-fingerprint")
    def secret_fingerprint():
        # Lets a deploy test prove the secret arrived without ever printing it.
        return jsonify(sha256=hashlib.sha256(cfg["SECRET_KEY"].encode()).hexdigest())
