"""A small notes app: Flask + SQLite (or PostgreSQL), configured only by environment variables.

The schema is owned by migrations/ (applied by components/scripts/migrate.py);
this code never creates tables. DATABASE_URL=postgresql://… (flask-deploy's
`database` setting) selects PostgreSQL through psycopg; otherwise SQLite at
DATABASE_PATH, as before.
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


# what each engine spells differently: the parameter mark and "now" as ISO 8601 UTC text
NOW_SQL = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    "postgres": "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
}


def is_postgres(url):
    return url.startswith(("postgresql://", "postgres://"))


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
    url = env.get("DATABASE_URL", "")
    app.config.update(
        DATABASE_ENGINE="postgres" if is_postgres(url) else "sqlite",
        DATABASE_URL=url if is_postgres(url) else "",
        DATABASE_PATH=_required(env, "DATABASE_PATH", "path of the SQLite database file"),
        SECRET_KEY=_required(env, "SECRET_KEY", "a long random string"),
        RELEASE_ID=env.get("RELEASE_ID") or "dev",
        APP_GREETING=env.get("APP_GREETING") or "Hello from Notes",
    )
    app.teardown_appcontext(_close_db)
    _register_routes(app)
    return app


def db_errors():
    """The exception class(es) of the engine in use."""
    if current_app.config["DATABASE_ENGINE"] == "postgres":
        import psycopg
        return (psycopg.Error,)
    return (sqlite3.Error,)


def query(sql, params=()):
    """SQL with '?' marks (SQLite's) on the request's connection; psycopg spells them %s."""
    if current_app.config["DATABASE_ENGINE"] == "postgres":
        sql = sql.replace("%", "%%").replace("?", "%s")
    return get_db().execute(sql, params)


def get_db():
    """One connection per request, opened lazily."""
    if "db" not in g and current_app.config["DATABASE_ENGINE"] == "postgres":
        import psycopg   # only apps on PostgreSQL need it
        from psycopg.rows import dict_row
        g.db = psycopg.connect(current_app.config["DATABASE_URL"], row_factory=dict_row, connect_timeout=5)
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


def first(row):
    """A one-column row's value (sqlite3.Row and psycopg's dict rows alike)."""
    return row[0] if isinstance(row, sqlite3.Row) else next(iter(row.values()))


def _note(row):
    return {"id": row["id"], "body": row["body"], "created_at": row["created_at"]}


def _register_routes(app):
    cfg = app.config

    @app.get("/health")
    def health():
        try:
            version = first(query("SELECT max(version) AS v FROM schema_migrations").fetchone())
        except db_errors() as e:
            return jsonify(status="error", release=cfg["RELEASE_ID"], error=str(e)), 503
        return jsonify(status="ok", release=cfg["RELEASE_ID"], schema_version=version or 0)

    @app.get("/")
    def index():
        count = first(query("SELECT count(*) AS n FROM notes").fetchone())
        return render_template(
            "index.html", greeting=cfg["APP_GREETING"], release=cfg["RELEASE_ID"], count=count
        )

    @app.get("/api/notes")
    def list_notes():
        rows = query("SELECT id, body, created_at FROM notes ORDER BY id").fetchall()
        return jsonify([_note(r) for r in rows])

    @app.post("/api/notes")
    def create_note():
        data = request.get_json(silent=True)
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body.strip():
            return jsonify(error='expected JSON {"body": "<non-empty text>"}'), 400
        if len(body) > MAX_BODY_CHARS:
            return jsonify(error=f"body is longer than {MAX_BODY_CHARS} characters"), 400
        row = query(
            "INSERT INTO notes (body, created_at)"
            " VALUES (?, " + NOW_SQL[cfg["DATABASE_ENGINE"]] + ")"
            " RETURNING id, body, created_at",
            (body,),
        ).fetchone()
        get_db().commit()
        return jsonify(_note(row)), 201

    @app.get("/api/secret-fingerprint")
    def secret_fingerprint():
        # Lets a deploy test prove the secret arrived without ever printing it.
        return jsonify(sha256=hashlib.sha256(cfg["SECRET_KEY"].encode()).hexdigest())
