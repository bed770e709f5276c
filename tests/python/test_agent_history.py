"""The release history (agent history.py): history.jsonl, the conversion of an older server's
history.log, the switch's questions (schema of a release, releases to keep, last healthy, live
schema) and where a rollback goes."""
import io
import json
import os
import stat
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

A, B, C, D = "a" * 12, "b" * 12, "c" * 12, "d" * 12


@pytest.fixture
def root(tmp_path):
    r = app_root(tmp_path, "srv/shop/releases", "srv/shop/migrations")
    for rid in (A, B, C):
        keep(r, rid)
    return r


def keep(root, rid):
    (root / "srv/shop/releases" / rid).mkdir(parents=True, exist_ok=True)
    (root / "srv/shop/releases" / rid / ".fdeploy-release.json").write_text("{}")


def legacy(root, *lines):
    (root / "srv/shop/history.log").write_text("".join(f"2026-01-01T00:00:0{i}Z {l}\n" for i, l in enumerate(lines)))


def lines(root):
    return [json.loads(x) for x in (root / "srv/shop/history.jsonl").read_text().splitlines()]


def agent(root, verb, ok=True, **params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(dict({"APP": "shop"}, **params))), stdout=out, stderr=err,
                  host=Host(root=str(root)))
    assert (rc == 0) == ok, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


def migrations(root, *names):
    d = root / "srv/shop/migrations/set1"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_text("")
    link = root / "srv/shop/migrations/current"
    if not link.is_symlink():
        link.symlink_to(d)


def test_a_record_converts_history_log_once_and_keeps_it(root):
    legacy(root, f"{A} live strategy=restart schema=1", f"{B} failed strategy=rolling schema=", "garbage",
           f"{B} live strategy=blue-green schema=2")
    old = (root / "srv/shop/history.log").read_text()
    migrations(root, "0001_a.up.sql", "0003_c.up.sql", "0002_b.up.sql", "0009_x.down.sql")
    r, err = agent(root, "history-live", RELEASE_ID=C, STRATEGY="canary")
    assert "converted history.log (3 entries)" in err
    got = lines(root)
    assert [(e["release"], e["status"], e["strategy"], e["schema"]) for e in got] == [
        (A, "live", "restart", 1), (B, "failed", "rolling", None), (B, "live", "blue-green", 2), (C, "live", "canary", 3)]
    assert got[0]["time"] == "2026-01-01T00:00:00Z"
    assert not (root / "srv/shop/history.log").exists()
    assert (root / "srv/shop/history.log.converted").read_text() == old
    assert stat.S_IMODE((root / "srv/shop/history.jsonl").stat().st_mode) == 0o644
    assert [e["releaseId"] for e in r["history"]] == [A, B, B, C]
    assert r["history"][-1]["schemaVersion"] == "3" and r["history"][1]["schemaVersion"] == ""
    # the next record appends, converts nothing
    _, err = agent(root, "history-failed", RELEASE_ID=A, STRATEGY="restart")
    assert "converted" not in err
    assert [(e["release"], e["status"]) for e in lines(root)][-2:] == [(C, "live"), (A, "failed")]


def test_a_conversion_cut_short_by_a_crash_adds_nothing_twice(root):
    legacy(root, f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2")
    agent(root, "history-live", RELEASE_ID=C, STRATEGY="restart")
    # the crash came after history.jsonl was written, before history.log was renamed
    (root / "srv/shop/history.log.converted").rename(root / "srv/shop/history.log")
    agent(root, "history-live", RELEASE_ID=A, STRATEGY="restart")
    assert [e["release"] for e in lines(root)] == [A, B, C, A]
    # an older version appended to a new history.log after the conversion: its lines are added, the file kept
    legacy(root, f"{B} live strategy=restart schema=7")
    agent(root, "history-live", RELEASE_ID=C, STRATEGY="restart")
    assert [(e["release"], e["schema"]) for e in lines(root)][-2:] == [(B, 7), (C, 0)]
    assert (root / "srv/shop/history.log.converted.2").exists()


def test_a_line_cut_short_is_skipped_and_the_next_starts_on_its_own(root):
    agent(root, "history-live", RELEASE_ID=A, STRATEGY="restart")
    with open(root / "srv/shop/history.jsonl", "a") as f:
        f.write('{"release": "bbbb')
    agent(root, "history-live", RELEASE_ID=C, STRATEGY="restart")
    r, _ = agent(root, "history", RELEASE_ID=D, KEEP_RELEASES=5)
    assert r["keep"] == [C, A]


def test_history_is_never_written_through_a_link(root, tmp_path):
    (tmp_path / "elsewhere").write_text("")
    (root / "srv/shop/history.jsonl").symlink_to(tmp_path / "elsewhere")
    _, err = agent(root, "history-live", ok=False, RELEASE_ID=A, STRATEGY="restart")
    assert "error: cannot write the release history /srv/shop/history.jsonl" in err and "Traceback" not in err
    assert (tmp_path / "elsewhere").read_text() == ""


def test_the_switch_questions_read_history_log_before_any_record(root):
    legacy(root, f"{A} live strategy=restart schema=1", f"{D} failed strategy=restart schema=1",
           f"{B} live strategy=restart schema=2", f"{A} failed strategy=restart schema=5",
           f"{D} live strategy=restart schema=4", f"{C} live strategy=restart schema=3", f"{C} live strategy=restart schema=3")
    (root / "srv/shop/releases" / D).mkdir()   # D is no longer installed (no .fdeploy-release.json)
    r, _ = agent(root, "history", RELEASE_ID=C, KEEP_RELEASES=3)
    assert r == {"ok": True, "schema": "3", "keep": [C, D, B], "lastHealthy": "/srv/shop/releases/" + B, "liveSchema": "3"}
    r, _ = agent(root, "history", RELEASE_ID=A, KEEP_RELEASES=0)
    assert (r["schema"], r["keep"], r["lastHealthy"]) == ("1", [], "/srv/shop/releases/" + C)
    assert not (root / "srv/shop/history.jsonl").exists(), "a read converts nothing"


def test_nothing_recorded_yet(root):
    r, _ = agent(root, "history", RELEASE_ID=A, KEEP_RELEASES=5)
    assert r == {"ok": True, "schema": "", "keep": [], "lastHealthy": "", "liveSchema": ""}
    agent(root, "history", ok=False, RELEASE_ID="../x")


def test_a_rollback_records_the_schema_its_release_went_live_with(root):
    legacy(root, f"{A} live strategy=restart schema=1", f"{A} failed strategy=restart schema=5",
           f"{B} live strategy=restart schema=2")
    migrations(root, "0002_b.up.sql")
    agent(root, "history-live", RELEASE_ID=A, STRATEGY="restart", ROLLBACK=1)
    assert (lines(root)[-1]["strategy"], lines(root)[-1]["schema"]) == ("rollback", 1)


def plan(root, history, to="", current=C, ok=True):
    legacy(root, *history)
    (root / "srv/shop/current").symlink_to(root / "srv/shop/releases" / current)
    r, err = agent(root, "rollback-plan", ok=ok, TO=to)
    return r if ok else r["error"]


def test_a_rollback_steps_back_one_deploy(root):
    r = plan(root, [f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
                    f"{C} live strategy=blue-green schema=3"])
    assert r == {"ok": True, "release": B, "schema": 2, "live": C}


def test_a_second_rollback_steps_further_back_not_forward(root):
    r = plan(root, [f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
                    f"{C} live strategy=restart schema=3", f"{B} live strategy=rollback schema=2"], current=B)
    assert r["release"] == A


def test_failed_releases_and_settings_only_activations_are_no_candidates(root):
    keep(root, D)
    r = plan(root, [f"{A} live strategy=restart schema=1", f"{D} failed strategy=restart schema=1",
                    f"{B} live strategy=restart schema=1", f"{B} live strategy=restart schema=1",
                    f"{D} failed strategy=rolling schema=1"], current=B)
    assert r["release"] == A


def test_a_deploy_after_a_rollback_goes_on_top_of_it(root):
    r = plan(root, [f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
                    f"{A} live strategy=rollback schema=1", f"{C} live strategy=restart schema=3"])
    assert r["release"] == A


def test_a_rollback_skips_releases_no_longer_kept(root):
    keep(root, D)
    (root / "srv/shop/releases" / B / ".fdeploy-release.json").unlink()
    r = plan(root, [f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
                    f"{D} live strategy=restart schema=3"], current=D)
    assert r["release"] == A


@pytest.mark.parametrize("to, history, error", [
    (D, [f"{A} live strategy=restart schema=1"], "release %s never went live on this server" % D),
    (C, [f"{A} live strategy=restart schema=1", f"{C} live strategy=restart schema=2"], "release %s is already live" % C),
    ("", [f"{C} live strategy=restart schema=2"], "no earlier healthy release is kept on the server (kept: %s %s %s)" % (A, B, C)),
    ("zz", [f"{A} live strategy=restart schema=1"], "bad release id 'zz'"),
])
def test_a_rollback_that_cannot_be(root, to, history, error):
    assert error in plan(root, history, to=to, ok=False)


def test_a_rollback_to_a_named_release(root):
    r = plan(root, [f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
                    f"{C} live strategy=restart schema=3"], to=A)
    assert (r["release"], r["schema"]) == (A, 1)


def test_no_rollback_before_anything_went_live(root):
    _, err = agent(root, "rollback-plan", ok=False, TO="")
    assert "nothing to roll back: no live release yet" in err


def test_the_strategy_recorded_is_the_one_given_and_must_be_known(root):
    agent(root, "history-live", RELEASE_ID=A, STRATEGY="blue-green", ROLLBACK="")
    assert lines(root)[-1]["strategy"] == "blue-green"
    _, err = agent(root, "history-live", ok=False, RELEASE_ID=A, STRATEGY="canary; rm -rf /")
    assert "bad strategy" in err and len(lines(root)) == 1
