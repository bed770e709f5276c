"""The scheduled jobs (agent jobs.py) without a server: a temporary folder stands for /, a fake for
systemctl, systemd-analyze and journalctl. What a user relies on: the units are the ones jobs.sh
wrote (an upgraded server rewrites and restarts nothing), only our units are ever touched, a dropped
job loses its units, bad job specs and schedules are refused naming the setting before anything
changes, and `fdeploy jobs run` reports its own run — never the one going on when it was asked."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, jobs, units  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

APP = App(name="shop", root="/srv/shop", user="shop")
SYSTEMD = "etc/systemd/system"


def done(out="", rc=0):
    return subprocess.CompletedProcess([], rc, out, "")


class Systemd:
    """systemctl and systemd-analyze as far as the verbs use them: `show` answers from PROPS (unit ->
    dict), `start` of a service from STARTS (a list of (output, props after it)), `systemd-analyze
    calendar` refuses the schedules in BAD; journalctl answers from JOURNAL (query -> entries)."""
    def __init__(self):
        self.calls, self.props, self.starts, self.bad, self.journal = [], {}, [], set(), {}

    def run(self, argv, merge_output=False):
        self.calls.append(list(argv))
        if argv[:2] == ["systemd-analyze", "calendar"]:
            return done("Failed to parse calendar specification '%s': Invalid argument" % argv[-1], 1) if argv[-1] in self.bad else done("ok")
        if argv[:3] == ["env", "TZ=UTC", "systemctl"]:
            wanted = argv[argv.index("-p") + 1].split(",")
            p = self.props.get(argv[-1], {})
            return done("".join("%s=%s\n" % (k, p.get(k, "")) for k in wanted))
        if argv[:3] == ["systemctl", "start", "--show-transaction"]:
            out, after = self.starts.pop(0)
            self.props[argv[-1]] = after
            return done(out)
        if argv[0] == "journalctl":
            key = " ".join(a for a in argv if "=" in a and not a.startswith("--output"))
            return done("".join(json.dumps(e) + "\n" for e in self.journal.get(key, [])))
        return done()

    def ran(self, *prefix):
        return [c for c in self.calls if c[:len(prefix)] == list(prefix)]


@pytest.fixture
def sd():
    return Systemd()


@pytest.fixture
def host(tmp_path, sd):
    app_root(tmp_path, "srv/shop", "run")
    return Host(root=str(tmp_path), run=sd.run, user_ids=lambda name: (1001, 1001))


def agent(host, verb, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([verb], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def jobs_param(**specs):
    return json.dumps({n: {"schedule": s, "command": c} for n, (s, c) in specs.items()})


# --- the units ---

def test_units_are_the_ones_jobs_sh_wrote():
    """Byte for byte what the bash jobs.sh rendered (checked on a test server), so an upgraded server
    rewrites no unit and restarts no timer."""
    job = jobs.Job("a", "*:*:0/5", 'echo "hi $X" % 100 \u00e9; exit 0')
    service = jobs.service_unit(APP, job)
    assert service == (
        "# Managed by flask-deploy (components/scripts/jobs.sh). Do not edit: the next deploy rewrites it.\n"
        "# fdeploy-job app=shop name=a\n"
        '# command: "echo \\"hi $X\\" % 100 \\u00e9; exit 0"\n'
        "[Unit]\nDescription=Job a of Flask app shop\nConditionPathExists=/srv/shop/current\nAfter=network.target\n\n"
        "[Service]\nType=oneshot\nUser=shop\nGroup=shop\nWorkingDirectory=/srv/shop/current\n"
        "EnvironmentFile=/etc/fdeploy/shop/env\nEnvironment=HOME=/tmp\nSyslogIdentifier=fdeploy-shop-job-a\n"
        'ExecStart=/bin/sh -c "r=$$(pwd -P) && export PATH=\\"$$r/.venv/bin:/usr/local/bin:/usr/bin:/bin\\" '
        'VIRTUAL_ENV=\\"$$r/.venv\\" RELEASE_ID=\\"$${r##*/}\\" && exec /bin/sh -c \\"$$1\\" \\"$$0\\"" a '
        '"echo \\"hi $$X\\" %% 100 \u00e9; exit 0"\n'
        + units.hardening("/srv/shop").rstrip("\n") + "\n")
    assert "ReadWritePaths=/srv/shop/shared\n" in service   # the one sandbox (hardening.conf)
    braces = jobs.service_unit(APP, jobs.Job("b", "daily", 'echo ${SECRET_KEY:+set} {x}'))
    assert '# command: "echo ${SECRET_KEY:+set} {x}"\n' in braces and ' b "echo $${SECRET_KEY:+set} {x}"\n' in braces
    assert jobs.timer_unit(APP, job) == (
        "# Managed by flask-deploy (components/scripts/jobs.sh). Do not edit: the next deploy rewrites it.\n"
        "# fdeploy-job app=shop name=a\n[Unit]\nDescription=Schedule of job a of Flask app shop\n\n"
        "[Timer]\nOnCalendar=*:*:0/5\nAccuracySec=1s\nUnit=fdeploy-shop-job-a.service\n\n[Install]\nWantedBy=timers.target\n")


@pytest.mark.parametrize("jobs_json, message", [
    ("[1]", "flask-deploy:jobs: expected an object"),
    ("not json", "flask-deploy:jobs: expected an object"),
    (jobs_param(**{"Bad": ("daily", "true")}), "bad job name 'Bad' (flask-deploy:jobs.<name>"),
    (jobs_param(**{"x" * 41: ("daily", "true")}), "bad job name"),
    (json.dumps({"a": {"schedule": "daily"}}), "flask-deploy:jobs.a: expected {schedule, command}"),
    (jobs_param(a=("daily; rm -rf /", "true")), "flask-deploy:jobs.a.schedule: 'daily; rm -rf /' is not a schedule"),
    (jobs_param(a=("", "true")), "flask-deploy:jobs.a.schedule: '' is not a schedule"),
    (jobs_param(a=("daily", "true\nreboot")), "flask-deploy:jobs.a.command: must be one line"),
    (jobs_param(a=("daily", "  ")), "flask-deploy:jobs.a.command: must be one line"),
])
def test_bad_job_specs_are_refused_naming_the_setting(host, tmp_path, sd, jobs_json, message):
    for verb in ("jobs-check", "jobs-create"):
        rc, out, err = agent(host, verb, {"APP": "shop", "JOBS": jobs_json})
        assert rc == 1 and message in out["error"], out
    assert os.listdir(tmp_path / SYSTEMD) == [] and sd.calls == [], "nothing changed, nothing ran"


def test_check_names_every_schedule_systemd_refuses_and_changes_nothing(host, tmp_path, sd):
    sd.bad = {"every other tuesday", "Mon..Fri 25:00"}
    rc, out, err = agent(host, "jobs-check", {"APP": "shop", "JOBS": jobs_param(
        a=("every other tuesday", "-"), b=("daily", "-"), c=("Mon..Fri 25:00", "-"))})
    assert rc == 1
    assert "flask-deploy:jobs.a.schedule: 'every other tuesday' is not a systemd calendar expression (OnCalendar): Failed to parse" in out["error"]
    assert "flask-deploy:jobs.c.schedule: 'Mon..Fri 25:00' is not a systemd calendar expression" in out["error"]
    assert "jobs.b" not in out["error"] and out["error"].splitlines()[0].endswith("nothing on the server was changed")
    assert [c[-1] for c in sd.ran("systemd-analyze")] == ["every other tuesday", "daily", "Mon..Fri 25:00"]
    assert os.listdir(tmp_path / SYSTEMD) == []
    sd.bad = set()
    rc, out, err = agent(host, "jobs-check", {"APP": "shop", "JOBS": jobs_param(b=(" daily ", "-"))})
    assert rc == 0 and out["valid"] == 1 and sd.calls[-1][-1] == "daily"


# --- create, drop, delete ---

def test_create_writes_units_and_starts_timers_then_changes_nothing(host, tmp_path, sd):
    params = {"APP": "shop", "JOBS": jobs_param(tick=("*:0/15", "flask tick"), night=("daily", "flask clean"))}
    rc, out, err = agent(host, "jobs-create", params)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path / SYSTEMD)) == [
        "fdeploy-shop-job-night.service", "fdeploy-shop-job-night.timer", "fdeploy-shop-job-tick.service", "fdeploy-shop-job-tick.timer"]
    assert oct((tmp_path / SYSTEMD / "fdeploy-shop-job-tick.service").stat().st_mode & 0o777) == "0o644"
    assert [j["changed"] for j in out["jobs"]] == [True, True] and out["removed"] == []
    assert sd.ran("systemctl", "daemon-reload")
    assert sd.ran("systemctl", "restart") == [["systemctl", "restart", "fdeploy-shop-job-night.timer"], ["systemctl", "restart", "fdeploy-shop-job-tick.timer"]]
    assert len(sd.ran("systemctl", "enable", "--quiet")) == 2
    # the same jobs again: nothing rewritten, the timers keep their state (start, not restart)
    sd.calls.clear()
    rc, out, err = agent(host, "jobs-create", params)
    assert [j["changed"] for j in out["jobs"]] == [False, False]
    assert sd.ran("systemctl", "restart") == [] and len(sd.ran("systemctl", "start")) == 2
    # a changed schedule: that timer restarts
    sd.calls.clear()
    params["JOBS"] = jobs_param(tick=("*:0/5", "flask tick"), night=("daily", "flask clean"))
    rc, out, err = agent(host, "jobs-create", params)
    assert sd.ran("systemctl", "restart") == [["systemctl", "restart", "fdeploy-shop-job-tick.timer"]]
    assert "OnCalendar=*:0/5\n" in (tmp_path / SYSTEMD / "fdeploy-shop-job-tick.timer").read_text()


def test_a_dropped_job_loses_its_units_and_only_ours_are_touched(host, tmp_path, sd):
    agent(host, "jobs-create", {"APP": "shop", "JOBS": jobs_param(a=("daily", "x"), b=("daily", "y"))})
    d = tmp_path / SYSTEMD
    (d / "fdeploy-shop-job-mine.timer").write_text("[Timer]\nOnCalendar=daily\n")   # the admin's own: no marker
    (d / "fdeploy-shop-job-x.timer").write_text("# fdeploy-job app=other name=x\n")   # another app's marker
    sd.calls.clear()
    rc, out, err = agent(host, "jobs-create", {"APP": "shop", "JOBS": jobs_param(a=("daily", "x"))})
    assert rc == 0 and out["removed"] == ["b"]
    assert sorted(os.listdir(d)) == ["fdeploy-shop-job-a.service", "fdeploy-shop-job-a.timer", "fdeploy-shop-job-mine.timer", "fdeploy-shop-job-x.timer"]
    assert ["systemctl", "disable", "--now", "--quiet", "fdeploy-shop-job-b.timer"] in sd.calls
    assert "job b removed" in err
    # the step's delete (and pulumi destroy): every job unit of the app, nothing else
    rc, out, err = agent(host, "jobs-delete", {"APP": "shop"})
    assert rc == 0 and out["removed"] == ["a"]
    assert sorted(os.listdir(d)) == ["fdeploy-shop-job-mine.timer", "fdeploy-shop-job-x.timer"]


def test_create_needs_the_base_system(host, tmp_path):
    os.unlink(tmp_path / "etc/fdeploy/shop.conf")
    rc, out, err = agent(host, "jobs-create", {"APP": "shop", "JOBS": jobs_param(a=("daily", "x"))})
    assert rc == 1 and "no base system" in out["error"]


# --- what fdeploy jobs shows ---

def test_job_state_of_each_kind_of_run():
    t = {"ActiveState": "active", "NextElapseUSecRealtime": "@1796587500", "LastTriggerUSec": "Sun 2026-12-06 20:04:40 UTC"}
    timer, service = b"OnCalendar=daily \n", b'# command: "flask x"\n'
    ok = jobs.job_state("a", timer, service, t, {"ActiveState": "inactive", "ExecMainStartTimestamp": "@1796587490",
                                                  "ExecMainExitTimestamp": "@1796587491", "ExecMainCode": "1", "ExecMainStatus": "0",
                                                  "Result": "success", "InvocationID": "abc"})
    assert ok["schedule"] == "daily" and ok["command"] == "flask x" and ok["nextRun"] == "2026-12-06T20:05:00Z"
    assert ok["lastTrigger"] == "2026-12-06T20:04:40Z"
    assert ok["lastRun"] == {"started": "2026-12-06T20:04:50Z", "ended": "2026-12-06T20:04:51Z", "result": "success", "exitStatus": 0,
                             "exit": "exited", "systemdResult": "success", "invocation": "abc"}
    failed = jobs.job_state("a", timer, service, t, {"ExecMainStartTimestamp": "@1796587490", "ExecMainCode": "1", "ExecMainStatus": "3",
                                                      "Result": "exit-code", "ActiveState": "failed"})
    assert failed["lastRun"]["result"] == "failed" and failed["lastRun"]["exitStatus"] == 3
    running = jobs.job_state("a", timer, service, t, {"ExecMainStartTimestamp": "@1796587490", "ActiveState": "activating"})
    assert running["running"] and running["lastRun"]["result"] == "running" and running["lastRun"]["ended"] is None
    skipped = jobs.job_state("a", timer, service, t, {"ConditionResult": "no", "ConditionTimestamp": "@1796587490"})
    assert skipped["lastRun"]["result"] == "skipped"
    assert jobs.job_state("a", None, None, {}, {})["lastRun"] is None


def test_list(host, tmp_path, sd):
    agent(host, "jobs-create", {"APP": "shop", "JOBS": jobs_param(a=("daily", "flask a"))})
    sd.props["fdeploy-shop-job-a.timer"] = {"ActiveState": "active", "NextElapseUSecRealtime": "@1796587500"}
    rc, out, err = agent(host, "jobs-list", {"APP": "shop"})
    assert rc == 0 and [(j["name"], j["schedule"], j["command"], j["nextRun"]) for j in out["jobs"]] == [
        ("a", "daily", "flask a", "2026-12-06T20:05:00Z")]


# --- jobs run ---

U = "fdeploy-shop-job-a.service"


def starting(job, inv):
    return {"MESSAGE_ID": jobs.MSG_STARTING, "JOB_ID": str(job), "INVOCATION_ID": inv, "__REALTIME_TIMESTAMP": "1796587490000000"}


def line(msg, stream, pid, inv=None):
    e = {"MESSAGE": msg, "_STREAM_ID": stream, "_PID": str(pid)}
    if inv:
        e["_SYSTEMD_INVOCATION_ID"] = inv
    return e


def starting_query(job):
    return "_PID=1 UNIT=%s JOB_ID=%d MESSAGE_ID=%s" % (U, job, jobs.MSG_STARTING)


@pytest.fixture
def one_job(host, sd):
    agent(host, "jobs-create", {"APP": "shop", "JOBS": jobs_param(a=("*:0/5", "flask a"))})
    sd.calls.clear()
    return sd


def run(host, sd):
    rc, out, err = agent(host, "jobs-run", {"APP": "shop", "NAME": "a"})
    return rc, out, err


def test_run_while_a_timer_run_is_going_on_waits_then_runs_its_own(host, one_job):
    sd = one_job
    sd.props[U] = {"ActiveState": "activating", "InvocationID": "timer-run", "ExecMainPID": "100"}
    done_props = {"ActiveState": "inactive", "InvocationID": "own", "ExecMainPID": "200", "ExecMainStartTimestamp": "@1796587495",
                  "ExecMainExitTimestamp": "@1796587496", "ExecMainCode": "1", "ExecMainStatus": "0", "Result": "success"}
    sd.starts = [("Enqueued anchor job 7 %s/start.\n" % U, {"ActiveState": "inactive", "InvocationID": "timer-run"}),   # joined it
                 ("Enqueued anchor job 9 %s/start.\n" % U, done_props)]
    sd.journal[starting_query(9)] = [starting(9, "own")]
    sd.journal["_SYSTEMD_UNIT=%s" % U] = [
        line("late line of the timer's run", "s1", 101), line("own: hello", "s2", 200, "own"), line("own: bye", "s2", 201)]
    sd.journal["_SYSTEMD_UNIT=%s _SYSTEMD_INVOCATION_ID=timer-run" % U] = [{"_STREAM_ID": "s1"}]
    rc, out, err = run(host, sd)
    assert rc == 0, err
    assert "job a is running now (started by its timer): waiting for that run to end, then running it" in err
    assert len(sd.ran("systemctl", "start", "--show-transaction")) == 2, "a second start after the run going on ended"
    assert out["output"] == ["own: hello", "own: bye"]
    assert out["job"]["lastRun"]["invocation"] == "own" and out["job"]["lastRun"]["result"] == "success"


def test_run_that_joined_the_run_going_on_while_the_timer_began_another_starts_again(host, one_job):
    """The start joined the run going on (its job's "Starting" line names that run) and the timer has
    begun a further one since: not the request's run; start again."""
    sd = one_job
    sd.props[U] = {"ActiveState": "activating", "InvocationID": "timer-run"}
    sd.starts = [("Enqueued anchor job 7 %s/start.\n" % U, {"ActiveState": "activating", "InvocationID": "timer-run-2"}),
                 ("Enqueued anchor job 9 %s/start.\n" % U, {"ActiveState": "inactive", "InvocationID": "own", "ExecMainPID": "300",
                                                            "ExecMainStartTimestamp": "@1796587495", "ExecMainStatus": "0", "Result": "success"})]
    sd.journal[starting_query(7)] = [starting(7, "timer-run")]
    sd.journal[starting_query(9)] = [starting(9, "own")]
    rc, out, err = run(host, sd)
    assert rc == 0, err
    assert len(sd.ran("systemctl", "start", "--show-transaction")) == 2
    assert out["job"]["lastRun"]["invocation"] == "own"


def test_run_reports_its_run_from_the_journal_when_the_timer_began_another_after_it(host, one_job):
    sd = one_job
    sd.props[U] = {"ActiveState": "inactive", "InvocationID": "old"}
    sd.starts = [("Enqueued anchor job 9 %s/start.\n" % U, {"ActiveState": "activating", "InvocationID": "next", "ExecMainPID": "400"})]
    sd.journal[starting_query(9)] = [starting(9, "own")]
    sd.journal["_PID=1 UNIT=%s INVOCATION_ID=own" % U] = [
        starting(9, "own"),
        {"MESSAGE_ID": jobs.MSG_PROCESS_EXIT, "EXIT_CODE": "exited", "EXIT_STATUS": "3", "__REALTIME_TIMESTAMP": "1796587491000000"},
        {"MESSAGE_ID": jobs.MSG_FAILURE_RESULT, "UNIT_RESULT": "exit-code", "__REALTIME_TIMESTAMP": "1796587491000000"},
        {"JOB_ID": "9", "JOB_RESULT": "failed", "__REALTIME_TIMESTAMP": "1796587491000000"}]
    sd.journal["_SYSTEMD_UNIT=%s" % U] = [line("boom", "s3", 350), line("next run", "s4", 400, "next")]
    rc, out, err = run(host, sd)
    assert rc == 0, err
    assert out["output"] == ["boom"]
    last = out["job"]["lastRun"]
    assert (last["result"], last["exitStatus"], last["invocation"], last["ended"]) == ("failed", 3, "own", "2026-12-06T20:04:51Z")


def test_run_skipped_without_a_live_release(host, one_job):
    sd = one_job
    sd.props[U] = {"ActiveState": "inactive", "InvocationID": ""}
    sd.starts = [("Enqueued anchor job 9 %s/start.\n" % U, {"InvocationID": "", "ConditionResult": "no", "ConditionTimestamp": "@1796587490"})]
    rc, out, err = run(host, sd)
    assert rc == 0 and out["output"] == [] and out["job"]["lastRun"]["result"] == "skipped"


def test_run_refuses_unknown_jobs_and_bad_names(host, one_job):
    rc, out, err = agent(host, "jobs-run", {"APP": "shop", "NAME": "nope"})
    assert rc == 1 and "no job 'nope' on this server (its jobs: a); jobs.nope in the stack's config and a pulumi up add it" in out["error"]
    rc, out, err = agent(host, "jobs-run", {"APP": "shop", "NAME": "../x"})
    assert rc == 1 and "bad job name '../x'" in out["error"]
    assert one_job.ran("systemctl", "start") == []


def test_run_lines_picks_its_own_stream():
    entries = [line("before", "s0", 90), line("own 1", "s1", 100, "inv"), line("own 2 (late: no id)", "s1", 105),
               line("next", "s2", 120, "next")]
    assert jobs.run_lines(entries, "inv", 100, 120, set()) == ["own 1", "own 2 (late: no id)"]
    # no line of its own stream got the id (all read late): by pids between its own and the next run's
    entries = [line("prev late", "s0", 90), line("own", "s1", 101), line("next late", "s2", 130)]
    assert jobs.run_lines(entries, "inv", 100, 120, set()) == ["own"]
    assert jobs.run_lines([line("x", "s9", 150)], "inv", 100, 0, {"s9"}) == []
    assert jobs.run_lines([{"MESSAGE": list(b"caf\xc3\xa9"), "_STREAM_ID": "s1", "_SYSTEMD_INVOCATION_ID": "inv"}], "inv", 0, 0, set()) == ["café"]


def test_transaction_job():
    assert jobs.transaction_job("Enqueued anchor job 1748 fdeploy-shop-job-a.service/start.\nEnqueued auxiliary job 1749 x/start.\n") == 1748
    assert jobs.transaction_job("Job for x failed.") is None
    with pytest.raises(AgentError):
        jobs.check_name("-x")


def test_list_and_run_of_an_app_not_deployed_here_exit_3(host, tmp_path):
    """fdeploy jobs (cli/lib/stack.ts) says "no app deployed" on exit 3."""
    os.unlink(tmp_path / "etc/fdeploy/shop.conf")
    for verb in ("jobs-list", "jobs-run"):
        rc, out, err = agent(host, verb, {"APP": "shop", "NAME": "a"})
        assert rc == 3 and "not deployed on this server" in out["error"], verb
