"""Fixtures: a tmp migrations dir and a tmp database path."""
import pytest


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "migrations"


@pytest.fixture
def db(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d / "app.db"


@pytest.fixture(autouse=True)
def internal_verbs(monkeypatch):
    """Functions the live verbs call inside the agent, in a verb's shape, that are not on its command
    line (nothing outside the tests called them there): their tests still call them through cli.main
    (parameters as JSON, an error as {"ok": false}) under the names they had."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
    from fdeploy_agent import (base, canary, cli, history, live, migrate_plan, ops, preflight, release_commands, repair, report,
                               site, slotuser, staging)
    verbs = {
        "went-live": live.went_live, "state-report": report.state_report, "state-repair": repair.state_repair,
        "canary-slot": report.canary_slot, "new-release-user": slotuser.new_release_user,
        "release-commands-prepare": release_commands.prepare, "migrate-plan": migrate_plan.migrate_plan,
        "site-saved-drop": site.site_saved_drop, "base-plan": base.base_plan, "base-settings": base.base_settings,
        "ops-logs": ops.ops_logs, "ops-nginx-lines": ops.ops_nginx_lines, "ops-exec": ops.ops_exec,
        "ops-maintenance": ops.ops_maintenance, "history-live": history.record_live, "history-failed": history.record_failed,
        "canary-plan": canary.canary_plan, "canary-gate": canary.canary_gate, "docker-args": staging.docker_args,
        # the switch's preflight modes (switch.py: preflight.check), and the site's steps inside site-create and tls
        "preflight-switch": lambda h, p, log, w: preflight.check(h, p, log, w, "switch"),
        "preflight-switch-light": lambda h, p, log, w: preflight.check(h, p, log, w, "light"),
        "site-stage": lambda h, p, log, w: site._site(h, p, True),
        "site-restore": lambda h, p, log, w: {"restored": site.restore(h, site.apps.check_name(p.get("APP")))},
    }
    for name, fn in verbs.items():
        monkeypatch.setitem(cli.VERBS, name, fn)
