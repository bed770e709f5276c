"""rollback-loss (agent): migrate.py loss runs as the app user on the set in force; its one JSON line
is the verb's result, with where the rollback's backup goes. Nothing runs without migrations."""
import io
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402


def call(host, params):
    out = io.StringIO()
    code = cli.main(["rollback-loss"], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=io.StringIO(), host=host)
    return code, json.loads(out.getvalue())


def test_runs_migrate_loss_as_the_app_user_and_returns_its_answer(tmp_path):
    app_root(tmp_path, "srv/shop/migrations/current")
    ran = []

    def run(argv, merge_output=False):
        ran.append(argv)
        line = json.dumps({"from": 3, "to": 1, "downs": [{"version": 3, "name": "tags", "lost": [{"table": "tags", "rows": 2}]}]})
        return subprocess.CompletedProcess(argv, 0, "reverting …\n" + line + "\n", "")
    code, r = call(Host(root=str(tmp_path), run=run), {"APP": "shop", "TO": 1})
    assert code == 0 and r["downs"][0]["lost"] == [{"table": "tags", "rows": 2}] and r["backupDir"] == "/srv/shop/shared/backups"
    assert ran == [["runuser", "-u", "shop", "--", "python3", "-I", "/srv/shop/migrations/migrate.py", "--db", "/srv/shop/shared/db/app.sqlite3",
                    "--dir", "/srv/shop/migrations/current", "--backup-dir", "/srv/shop/shared/backups", "loss", "--to", "1"]]


def test_no_migrations_no_loss_and_bad_input_refused(tmp_path):
    app_root(tmp_path)
    host = Host(root=str(tmp_path), run=lambda argv, merge_output=False: (_ for _ in ()).throw(AssertionError("ran %r" % argv)))
    assert call(host, {"APP": "shop", "TO": 0})[1]["downs"] == []
    code, r = call(host, {"APP": "shop", "TO": "1; rm"})
    assert code == 1 and "bad schema version" in r["error"]


def test_a_failing_loss_run_names_its_last_line(tmp_path):
    app_root(tmp_path, "srv/shop/migrations/current")
    host = Host(root=str(tmp_path), run=lambda argv, merge_output=False: subprocess.CompletedProcess(argv, 3, "", "migrate: cannot tell what a rollback drops\n"))
    code, r = call(host, {"APP": "shop", "TO": 1})
    assert code == 1 and r["error"].endswith("migrate: cannot tell what a rollback drops")
