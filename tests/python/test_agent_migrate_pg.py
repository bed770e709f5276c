"""The migration runner on PostgreSQL: migrate_pg.py's URL and SQL parsing, its psql session protocol
(against a stand-in psql that speaks it), the agent's DATABASE_URL lookup (migrate_db.py) and what the
migrate step runs. Against a real PostgreSQL (set FDEPLOY_TEST_PG_URL to a postgresql:// URL of a
scratch database this test may wipe): migrate.py up/down/status/loss, the rolled-back failure and
the advisory lock. The e2e suite (tests/e2e/postgres-migrations.test.ts) runs them on a server."""
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(__file__)
SCRIPTS = os.path.join(HERE, "..", "..", "components", "scripts")
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.join(SCRIPTS, "agent"))

import migrate_pg  # noqa: E402
from fdeploy_agent import cli, migrate_db, migrate_step  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import MIGRATE, app_root  # noqa: E402

URL = "postgresql://shop:p%40ss%20word@db.example:5433/shopdb?sslmode=require"


# ---------------------------------------------------------------- the URL

def test_a_url_becomes_libpq_settings_with_the_password_decoded():
    assert migrate_pg.parse_url(URL) == {"PGHOST": "db.example", "PGPORT": "5433", "PGUSER": "shop", "PGDATABASE": "shopdb",
                                         "PGPASSWORD": "p@ss word", "PGSSLMODE": "require"}
    assert migrate_pg.parse_url("postgresql+psycopg://u@h/d")["PGPORT"] == "5432"
    assert "PGPASSWORD" not in migrate_pg.parse_url("postgres://u@h/d")


@pytest.mark.parametrize("url,why", [
    ("sqlite:////srv/x/app.sqlite3", "is not a postgresql:// URL"), ("postgresql://u:p@/d", "names no host"),
    ("postgresql://u:p@h/", "names no database"), ("postgresql://h/d", "names no user"),
    ("postgresql://u@h:99999/d", "is malformed"), ("postgresql://u@h/d?sslmode=maybe", "has sslmode=maybe")])
def test_a_bad_url_names_database_url_and_the_form(url, why):
    with pytest.raises(migrate_pg.UrlError) as e:
        migrate_pg.parse_url(url)
    assert str(e.value).startswith("DATABASE_URL " + why) and migrate_pg.URL_FORM in str(e.value)
    assert "p@ss" not in str(e.value)


def test_psql_gets_only_the_connection_in_its_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", URL)
    monkeypatch.setenv("PGSERVICE", "other")
    env = migrate_pg.psql_env(migrate_pg.parse_url(URL))
    assert env["PGPASSWORD"] == "p@ss word" and "DATABASE_URL" not in env and "PGSERVICE" not in env


def test_the_lock_key_is_per_database_and_stable():
    assert migrate_pg.lock_key("shop") == migrate_pg.lock_key("shop") != migrate_pg.lock_key("shop2")
    assert -2 ** 63 <= migrate_pg.lock_key("shop") < 2 ** 63


def test_literals():
    assert migrate_pg.literal("it's") == "'it''s'" and migrate_pg.literal(7) == "7"
    for bad in (True, None, 1.5, "a\0b"):
        with pytest.raises((TypeError, ValueError)):
            migrate_pg.literal(bad)


# ---------------------------------------------------------------- the SQL files

def test_statements_split_at_top_level_semicolons_only():
    sql = textwrap.dedent("""\
        -- a comment; with a semicolon
        CREATE TABLE t (a text DEFAULT 'x;y', "b;c" int);
        /* block /* nested; */ still; */ INSERT INTO t VALUES (E'it\\'s;', 1);
        CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END; $body$;
        DO $$ BEGIN PERFORM 1; END $$;
        SELECT 'no semicolon at the end'
        """)
    stmts = migrate_pg.statements(sql)
    assert len(stmts) == 5
    assert "$body$ BEGIN RETURN 1; END; $body$;" in stmts[2] and stmts[4].strip() == "SELECT 'no semicolon at the end'"
    assert migrate_pg.check_sql("f", sql).rstrip().endswith("'no semicolon at the end'\n\n;")


@pytest.mark.parametrize("sql,message", [
    ("CREATE TABLE t (a int);\nCOMMIT;\n", "contains transaction control ('COMMIT;')"),
    ("begin;\nCREATE TABLE t (a int);", "contains transaction control"),
    ("/* x */ START TRANSACTION;", "contains transaction control"),
    ("ROLLBACK", "contains transaction control"),
    ("CREATE TABLE t (a int);\n\\i /etc/shadow\n", "a backslash outside a string"),
    ("SELECT 'open;", "an unterminated ' quote"),
    ("SELECT $x$ open", "an unterminated $x$ quote"),
    ("/* open", "an unterminated /* comment")])
def test_files_the_runner_cannot_run_in_one_transaction_are_refused_naming_the_file(sql, message):
    with pytest.raises(ValueError) as e:
        migrate_pg.check_sql("0002_x.up.sql", sql)
    assert str(e.value).startswith("0002_x.up.sql: ") and message in str(e.value)


def test_begin_inside_a_function_body_or_a_string_is_not_transaction_control():
    migrate_pg.check_sql("f", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  NULL;\nEND;\n$$;\nSELECT 'COMMIT';")


# ---------------------------------------------------------------- the session protocol (a stand-in psql)

FAKE_PSQL = r'''#!/usr/bin/env python3
import json, os, sys
with open(LOG, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "password": os.environ.get("PGPASSWORD")}) + "\n")
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("\\echo "):
        print(line[6:], flush=True)
    elif "FAIL" in line:
        print("ERROR:  relation \"nope\" does not exist", file=sys.stderr, flush=True)
        sys.exit(3)
    elif line.startswith("SELECT "):
        print(line[7:].rstrip(";"), flush=True)
'''


@pytest.fixture
def psql(tmp_path):
    exe = tmp_path / "psql"
    exe.write_text(FAKE_PSQL.replace("LOG", repr(str(tmp_path / "log"))))   # its environment is psql_env's only
    exe.chmod(0o755)
    return exe


def test_a_session_reads_each_batch_up_to_its_marker_and_keeps_one_process(psql, tmp_path):
    s = migrate_pg.Session(migrate_pg.parse_url(URL), str(psql))
    try:
        assert s.run("SELECT 1;\nSELECT 2;") == ["1", "2"]
        assert s.value("SELECT 'x';") == "'x'"
        assert s.run("CREATE TABLE t (a int);") == []
    finally:
        s.close()
    calls = [json.loads(x) for x in (tmp_path / "log").read_text().splitlines()]
    assert len(calls) == 1, "one psql for the run"
    argv = calls[0]["argv"]
    assert calls[0]["password"] == "p@ss word" and not any("p@ss" in a or "word" in a for a in argv)
    assert argv[argv.index("-v") + 1] == "ON_ERROR_STOP=1" and "-X" in argv


def test_an_error_ends_the_session_with_psql_s_message(psql):
    s = migrate_pg.Session(migrate_pg.parse_url(URL), str(psql))
    with pytest.raises(migrate_pg.SessionError) as e:
        s.run("SELECT 1;\nFAIL;\nSELECT 2;")
    assert 'relation "nope" does not exist' in str(e.value)
    s.close()


def test_no_psql_is_a_clear_error(tmp_path):
    with pytest.raises(migrate_pg.SessionError) as e:
        migrate_pg.Session(migrate_pg.parse_url(URL), str(tmp_path / "none"))
    assert "postgresql-client" in str(e.value)


def test_migrate_py_refuses_a_bad_url_on_stdin_before_connecting(tmp_path):
    (tmp_path / "m").mkdir()
    p = subprocess.run([sys.executable, str(MIGRATE), "--url-stdin", "--dir", str(tmp_path / "m"), "--backup-dir", str(tmp_path / "b"), "up"],
                       input="mysql://u:secret@h/d\n", capture_output=True, text=True)
    assert p.returncode == 2 and "DATABASE_URL is not a postgresql:// URL" in p.stderr and "secret" not in p.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args,message", [(["--db", "x", "--url-stdin", "--dir", "m", "up"], "exclude each other"),
                                          (["--db", "x", "--dir", "m", "dump"], "dump is for PostgreSQL"),
                                          (["--url-stdin", "--dir", "m", "up"], "--backup-dir is required")])
def test_migrate_py_usage_errors(args, message):
    p = subprocess.run([sys.executable, str(MIGRATE), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and message in p.stderr


# ---------------------------------------------------------------- the agent: which database, what runs

@pytest.mark.parametrize("line,value", [('DATABASE_URL="postgresql://a:b\\"c@h/d"', 'postgresql://a:b"c@h/d'),
                                        ("DATABASE_URL=postgresql://a@h/d", "postgresql://a@h/d"),
                                        ('OTHER_DATABASE_URL="x"', None)])
def test_env_value_reads_what_envline_writes(line, value):
    assert migrate_db.env_value('A="1"\n' + line + "\n", "DATABASE_URL") == value


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = app_root(tmp_path / "server", "srv/shop/shared/db", "srv/shop/shared/backups", "srv/shop/slots", "run")
    home = tmp_path / "home"
    monkeypatch.setattr(migrate_step, "bundle_home", lambda: str(home))
    d = home / "migrations-0123456789ab"
    d.mkdir(parents=True)
    (d / "0001_notes.up.sql").write_text("CREATE TABLE notes (id serial PRIMARY KEY);")
    (d / "0001_notes.down.sql").write_text("DROP TABLE notes;")
    return r


def env(root, name, text):
    d = root / "etc/fdeploy/shop"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)


def test_the_staged_url_for_an_up_the_one_in_force_for_a_down(root):
    host = Host(root=str(root))
    app = migrate_db.apps.load(host, "shop")
    assert migrate_db.postgres_url(host, app, staged=True) is None
    env(root, "env", 'DATABASE_URL="sqlite:////srv/shop/shared/db/app.sqlite3"\n')
    assert migrate_db.postgres_url(host, app, staged=True) is None
    env(root, "env.desired", 'DATABASE_URL="%s"\n' % URL)
    assert migrate_db.postgres_url(host, app, staged=True) == URL
    assert migrate_db.postgres_url(host, app, staged=False) is None


def test_the_step_on_postgresql_installs_the_client_and_passes_the_url_on_stdin(root):
    env(root, "env.desired", 'SECRET_KEY="k"\nDATABASE_URL="%s"\n' % URL)
    calls, inputs = [], []

    def run(argv, merge_output=False, input=None, umask=None):
        calls.append(list(argv))
        inputs.append(input)
        if argv[0] == "runuser":
            return subprocess.CompletedProcess(argv, 0, "schema_version=1\n", "applying 0001_notes.up.sql ...\n")
        return subprocess.CompletedProcess(argv, 0, "", "")
    host = Host(root=str(root), run=run, user_ids=lambda n: (2001, 2001), which=lambda c: None, kill_user=lambda uid, gid: None)
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["migrate"], stdin=io.StringIO(json.dumps({"APP": "shop", "MIGRATIONS": "migrations-0123456789ab", "KEEP_BACKUPS": 3})),
                  stdout=out, stderr=err, host=host)
    assert rc == 0, err.getvalue()
    assert json.loads(out.getvalue())["schema_version"] == 1
    apt = next(c for c in calls if c[0] == "flock")
    assert apt[-1] == "postgresql-client"
    i = next(i for i, c in enumerate(calls) if c[0] == "runuser")
    assert "--url-stdin" in calls[i] and "--db" not in calls[i] and inputs[i] == URL + "\n"
    assert not any("p%40ss" in a or "p@ss" in a for c in calls for a in c), "the password is never on a command line"
    assert (root / "srv/shop/migrations/migrate_pg.py").is_file()


def test_an_app_on_sqlite_runs_exactly_as_before(root):
    env(root, "env.desired", 'DATABASE_URL="sqlite:////srv/shop/shared/db/app.sqlite3"\n')
    calls = []

    def run(argv, merge_output=False, input=None, umask=None):
        calls.append((list(argv), input))
        return subprocess.CompletedProcess(argv, 0, "schema_version=1\n", "")
    host = Host(root=str(root), run=run, user_ids=lambda n: (2001, 2001), which=lambda c: None, kill_user=lambda uid, gid: None)
    rc = cli.main(["migrate"], stdin=io.StringIO(json.dumps({"APP": "shop", "MIGRATIONS": "migrations-0123456789ab", "KEEP_BACKUPS": 3})),
                  stdout=io.StringIO(), stderr=io.StringIO(), host=host)
    assert rc == 0
    assert [c for c, _ in calls if c[0] == "flock"] == []
    argv, stdin = next((c, i) for c, i in calls if c[0] == "runuser")
    assert argv[argv.index("--db") + 1] == "/srv/shop/shared/db/app.sqlite3" and stdin is None


# ---------------------------------------------------------------- a real PostgreSQL (optional)

REAL = os.environ.get("FDEPLOY_TEST_PG_URL")
real = pytest.mark.skipif(not REAL, reason="no PostgreSQL: set FDEPLOY_TEST_PG_URL=postgresql://user:pass@host/scratchdb (wiped) to run; "
                                           "the e2e suite postgres-migrations runs these on a server")


def psql_query(sql):
    conn = migrate_pg.parse_url(REAL)
    return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], env=migrate_pg.psql_env(conn),
                          capture_output=True, text=True, check=True).stdout.strip()


def mig(tmp_path, *args):
    return subprocess.run([sys.executable, "-I", str(MIGRATE), "--url-stdin", "--dir", str(tmp_path / "m"), "--backup-dir", str(tmp_path / "b"), *args],
                          input=REAL + "\n", capture_output=True, text=True)


@pytest.fixture
def scratch(tmp_path):
    psql_query("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    m = tmp_path / "m"
    m.mkdir()
    (m / "0001_notes.up.sql").write_text("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);\nINSERT INTO notes (body) VALUES ('a');")
    (m / "0001_notes.down.sql").write_text("DROP TABLE notes;")
    (m / "0002_pinned.up.sql").write_text("ALTER TABLE notes ADD COLUMN pinned int NOT NULL DEFAULT 0;\nUPDATE notes SET pinned = 1;")
    (m / "0002_pinned.down.sql").write_text("ALTER TABLE notes DROP COLUMN pinned;")
    return m


@real
def test_real_up_down_status_and_a_dump_before_each_change(tmp_path, scratch):
    p = mig(tmp_path, "up")
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1] == "schema_version=2", p.stderr
    assert not (tmp_path / "b").exists() or not os.listdir(tmp_path / "b"), "no dump of an empty database"
    assert psql_query("SELECT version || name FROM schema_migrations ORDER BY version") == "1notes\n2pinned"
    loss = mig(tmp_path, "loss", "--to", "1")
    assert json.loads(loss.stdout)["downs"][0]["lost"] == [{"table": "notes", "column": "pinned", "values": 1, "nonDefault": 1}]
    assert psql_query("SELECT pinned FROM notes") == "1", "loss changes nothing"
    p = mig(tmp_path, "down", "--to", "1")
    assert p.returncode == 0 and "schema_version=1" in p.stdout, p.stderr
    assert [n.endswith("-v2.pgdump") for n in os.listdir(tmp_path / "b")] == [True]
    s = mig(tmp_path, "status")
    assert json.loads(s.stdout.splitlines()[0])["current"] == 1


@real
def test_real_a_failing_migration_is_rolled_back_whole(tmp_path, scratch):
    (scratch / "0003_bad.up.sql").write_text("ALTER TABLE notes ADD COLUMN extra text;\nINSERT INTO no_such_table VALUES (1);")
    (scratch / "0003_bad.down.sql").write_text("SELECT 1;")
    p = mig(tmp_path, "up")
    assert p.returncode == 1 and 'relation "no_such_table" does not exist' in p.stderr and "database left at schema version 2" in p.stderr
    assert "extra" not in psql_query("SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'notes'")
    assert psql_query("SELECT max(version) FROM schema_migrations") == "2"


@real
def test_real_a_held_advisory_lock_is_exit_75(tmp_path, scratch):
    conn = migrate_pg.parse_url(REAL)
    holder = subprocess.Popen(["psql", "-X", "-qAt", "-c", "SELECT pg_advisory_lock(%d), pg_sleep(5)" % migrate_pg.lock_key(conn["PGDATABASE"])],
                              env=migrate_pg.psql_env(conn), stdout=subprocess.DEVNULL)
    try:
        import time
        time.sleep(1)
        p = mig(tmp_path, "up")
        assert p.returncode == 75 and "advisory lock is held" in p.stderr
    finally:
        holder.kill()
        holder.wait()
