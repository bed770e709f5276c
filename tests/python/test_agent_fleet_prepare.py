"""A fleet host's part before its turn (agent fleet_prepare.py, switch.py Switch.prepare) on the fake server of
test_agent_switch.py: the new release started and checked on the idle slot while the live one serves with the
settings in force unchanged; the host's turn (activate PREPARED) then only flips, neither restarting the slot
nor killing its user's processes, and keeps the old slot running, which a fleet sending the host back flips
back to; tidy stops every slot but the live one; a slot that no longer runs idle gets the whole switch."""
import io
import json
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, fleet_prepare, switch  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
import test_agent_switch  # noqa: E402
from test_agent_switch import A, B, C, activate, deployed, params, stage  # noqa: E402

server = test_agent_switch.server   # its fixture: the fake server

OLD_UNIT, NEW_UNIT = "[Service]\nExecStart=gunicorn app:app\n", "[Service]\nExecStart=gunicorn newapp:app\n"


def prepare(server, rid=B, strategy="restart", logs=None, **kw):
    sw = switch.Switch(server.host(), params(rid, strategy, **kw), (logs.append if logs is not None else lambda line: None), bundle="x")
    return sw, sw.prepare()


def staged_new(server):
    stage(server, module="newapp:app", env="GREETING=new\n")


@pytest.mark.parametrize("strategy", ["restart", "rolling", "blue-green"])
def test_prepare_runs_the_release_on_the_idle_slot_and_changes_nothing_served_or_in_force(server, strategy):
    deployed(server, A, strategy)
    live = server.live()
    staged_new(server)
    sw, slot = prepare(server, B, strategy)
    assert slot == ("green" if live == "blue" else "blue")
    assert server.active == {live, slot} and server.release(slot) == B
    assert sw.trail == ["preflight", "checked-" + slot]
    # what the host serves and the settings in force: the live release's
    assert server.served() == A and server.live() == live
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == OLD_UNIT and server.file("/etc/fdeploy/shop/env") == "GREETING=hi\n"
    # the slot runs as the other slot user than the live one
    assert "User=shop_2" in server.file("/etc/systemd/system/fdeploy-shop@%s.service.d/50-slot-user.conf" % slot)


def test_the_turn_of_a_prepared_host_flips_without_a_restart_or_a_new_release_user(server, monkeypatch):
    deployed(server, A)
    staged_new(server)
    prepare(server)
    server.calls.clear()
    users = []
    monkeypatch.setattr(switch.slotuser, "new_release_user", lambda *a: users.append(a) or {"users": ["shop_1", "shop_1"]})
    sw, _ = activate(server, B, PREPARED="blue")
    assert sw.trail == ["settings-desired", "checked-blue", "live-blue", "recorded-live", "recorded"]
    assert server.restarted() == [] and users == []   # new-release-user would kill the prepared slot's processes
    # the old slot runs on (its in-flight requests finish) until the rollout's tidy
    assert server.served() == B and server.live() == "blue" and server.active == {"main", "blue"}
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == NEW_UNIT and server.file("/etc/fdeploy/shop/env.live") == "GREETING=new\n"
    assert [(e["release"], e["status"]) for e in server.history()][-1] == (B, "live")


def test_a_prepared_slot_no_longer_running_gets_the_whole_switch(server):
    deployed(server, A)
    staged_new(server)
    prepare(server)
    server.active.discard("blue")   # its process died between the prepare and the turn
    logs = []
    sw, _ = activate(server, B, "restart", logs, PREPARED="blue")
    assert sw.trail[:4] == ["settings-desired", "preflight", "restarted-main", "checked-main"]
    assert server.served() == B and "the prepared slot blue does not run release %s idle" % B in "\n".join(logs)


def test_a_prepared_slot_failing_its_check_at_the_turn_stops_and_the_live_one_serves(server):
    deployed(server, A)
    staged_new(server)
    prepare(server)
    server.health[B] = "500"   # answered at the prepare, not any more
    with pytest.raises(AgentError, match="failed its health check on slot blue; slot main keeps serving"):
        activate(server, B, PREPARED="blue")
    assert server.served() == A and server.active == {"main"}
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == OLD_UNIT


def test_a_failed_prepare_stops_the_idle_slot_and_leaves_everything_in_force(server):
    deployed(server, A)
    staged_new(server)
    server.health[B] = "500"
    with pytest.raises(AgentError, match="failed its health check on slot blue, prepared; slot main keeps serving"):
        prepare(server)
    assert server.active == {"main"} and server.served() == A
    assert server.file("/etc/systemd/system/fdeploy-shop@.service") == OLD_UNIT and server.file("/etc/fdeploy/shop/env") == "GREETING=hi\n"


def test_the_flip_leaves_pruning_to_the_tidy(server, monkeypatch):
    deployed(server, A)
    staged_new(server)
    pruned = []
    monkeypatch.setattr(switch.prune, "prune", lambda *a, **kw: pruned.append(a[1]["RELEASE_ID"]))
    prepare(server)
    activate(server, B, PREPARED="blue")
    assert pruned == []   # a venv's removal takes seconds: not in the rollout's serial part
    sw, _ = prepare(server, B)
    sw.tidy()
    assert pruned == [B]
    activate(server, C)   # any other activation prunes as before
    assert pruned == [B, C]


def test_tidy_stops_every_slot_but_the_live_one(server):
    deployed(server, A)
    staged_new(server)
    sw, slot = prepare(server)   # the rollout stopped before this host's turn
    assert sw.tidy() == ["blue"] and server.active == {"main"} and server.served() == A
    prepare(server)
    activate(server, B, PREPARED="blue")
    sw, _ = prepare(server, B)
    assert sw.tidy() == ["main"] and server.active == {"blue"} and server.served() == B
    assert sw.tidy() == []


def test_a_host_sent_back_flips_back_to_the_old_slot_with_the_settings_it_ran_with(server):
    deployed(server, A)
    staged_new(server)
    prepare(server)
    activate(server, B, PREPARED="blue")
    server.calls.clear()
    logs = []
    sw, _ = activate(server, A, "restart", logs, ROLLBACK=1, FLEET_BACK=1)
    assert sw.trail == ["settings-desired", "checked-main", "live-main", "recorded-live", "recorded"]
    assert server.restarted() == [] and server.served() == A and server.live() == "main"
    assert server.file("/etc/fdeploy/shop/env") == "GREETING=hi\n" and server.file("/etc/systemd/system/fdeploy-shop@.service") == OLD_UNIT
    assert "going back to %s with the units and environment it ran with" % A in "\n".join(logs)
    sw, _ = prepare(server, A)
    assert sw.tidy() == ["blue"] and server.active == {"main"}


@pytest.mark.parametrize("case", ["canary", "first release", "live already", "docker"])
def test_nothing_is_prepared_where_the_turn_must_run_the_whole_switch(server, case):
    if case != "first release":
        deployed(server, A)
    staged_new(server)
    rid, strategy, kw = {"canary": (B, "canary", {}), "first release": (B, "restart", {}), "live already": (A, "restart", {}),
                         "docker": (B, "restart", {"RUNTIME": "docker"})}[case]
    before = set(server.active)
    _, slot = prepare(server, rid, strategy, **kw)
    assert slot == "" and server.active == before


def test_the_verb_holds_the_deploy_lock_with_the_deploys_lease_and_says_the_slot(server, monkeypatch):
    deployed(server, A)
    staged_new(server)
    seen = []
    real = switch.deploy_lock
    monkeypatch.setattr(switch, "deploy_lock", lambda host, app, wait, log, deploy="": seen.append(deploy) or real(host, app, wait, log, deploy=deploy))
    monkeypatch.setitem(cli.VERBS, "fleet-prepare", lambda h, p, log, lw: fleet_prepare.fleet_prepare(h, p, log, lw, bundle="x"))
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["fleet-prepare"], stdin=io.StringIO(json.dumps(params(B, DEPLOY="proj/dev"))), stdout=out, stderr=err, host=server.host())
    assert rc == 0, err.getvalue()
    assert json.loads(out.getvalue())["slot"] == "blue" and seen == ["proj/dev"]
    out = io.StringIO()
    rc = cli.main(["fleet-prepare"], stdin=io.StringIO(json.dumps(params(B, DEPLOY="proj/dev", TIDY=1))), stdout=out, stderr=err, host=server.host())
    assert rc == 0 and json.loads(out.getvalue())["stopped"] == ["blue"] and server.active == {"main"}
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
