"""The app's scheduled jobs (stack config `jobs.<name>`), each a pair of units:
  fdeploy-<app>-job-<name>.timer    OnCalendar=<schedule> (AccuracySec=1s)
  fdeploy-<app>-job-<name>.service  Type=oneshot: `/bin/sh -c <command>` in the live release
      (APP_ROOT/current, resolved once when a run starts: the run keeps that release's code to its
      end), its venv first on PATH, RELEASE_ID, as the app user, with the app's environment file
      (read by systemd) and the slots' sandbox; output to the journal. A oneshot unit has one run at
      a time: the timer firing while a run is going on starts no second one.
Our units carry the line "# fdeploy-job app=<app> name=<name>"; nothing else is ever touched.
Verbs (components/jobs.ts's steps and `fdeploy jobs` call them): jobs-check, jobs-create, jobs-delete
(--app APP: the step's delete), jobs-list, jobs-run (exit 3: the app is not deployed here)."""
import glob
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from . import app as apps
from . import lease, units
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
Props = Dict[str, str]
Entry = Dict[str, Any]

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
SCHEDULE = re.compile(r"[A-Za-z0-9*:.,/~_+ -]{1,200}")
SYSTEMD = "/etc/systemd/system"
HEADER = "# Managed by flask-deploy (components/scripts/jobs.sh). Do not edit: the next deploy rewrites it.\n"   # (the text of the bash that wrote the units first: an upgrade rewrites none)
# `sh -c RUNNER <name> <command>`: the live release as the working directory systemd entered,
# resolved once, so the whole run uses one release's code and venv
RUNNER = ('r=$(pwd -P) && export PATH="$r/.venv/bin:/usr/local/bin:/usr/bin:/bin" VIRTUAL_ENV="$r/.venv" '
          'RELEASE_ID="${r##*/}" && exec /bin/sh -c "$1" "$0"')
SERVICE_PROPS = ("ActiveState,ExecMainStartTimestamp,ExecMainExitTimestamp,ExecMainCode,ExecMainStatus,ExecMainPID,"
                 "Result,ConditionResult,ConditionTimestamp,InvocationID")
TIMER_PROPS = "NextElapseUSecRealtime,LastTriggerUSec,ActiveState,UnitFileState"
MSG_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"        # systemd's catalog: "Starting <unit>…"
MSG_PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"    # "Main process exited, code=…, status=…"
MSG_FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"  # "Failed with result '…'"
SCHEDULE_HELP = "Expected e.g. hourly, daily, '*-*-* 03:00:00', 'Mon..Fri 09:00' or '*:0/15' (man systemd.time)"


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    command: str


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AgentError("bad job name %r (flask-deploy:jobs.<name>: 1-40 of a-z 0-9 _ -, starting with a-z or 0-9; "
                         "fdeploy jobs lists them)" % (name,))
    return name


def check_jobs(raw: object) -> List[Job]:
    """JOBS (a JSON object name -> {schedule, command}, or its text) as jobs in name order, checked
    like components/config.ts checks them."""
    if raw is None or raw == "":
        raw = {}
    elif isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, dict):
        raise AgentError("bad job definitions (flask-deploy:jobs: expected an object name -> {schedule, command})")
    out = []
    for name in sorted(raw):
        check_name(name)
        spec = raw[name]
        if not isinstance(spec, dict) or not isinstance(spec.get("schedule"), str) or not isinstance(spec.get("command"), str):
            raise AgentError("bad job %s (flask-deploy:jobs.%s: expected {schedule, command}, both text)" % (name, name))
        schedule, command = spec["schedule"].strip(), spec["command"]
        if not SCHEDULE.fullmatch(schedule):
            raise AgentError("flask-deploy:jobs.%s.schedule: %r is not a schedule (1-200 of A-Z a-z 0-9 * : . , / ~ _ + - space). %s"
                             % (name, schedule, SCHEDULE_HELP))
        if not command.strip() or re.search(r"[\r\n\0]", command):
            raise AgentError("flask-deploy:jobs.%s.command: must be one line of shell, not empty" % name)
        out.append(Job(name, schedule, command))
    return out


def unit_of(app: str, name: str) -> str:
    return "fdeploy-%s-job-%s" % (app, name)


def marker(app: str, name: str) -> str:
    return "# fdeploy-job app=%s name=%s" % (app, name)


def service_unit(app: apps.App, job: Job) -> str:
    u = unit_of(app.name, job.name)
    return HEADER + marker(app.name, job.name) + "\n# command: " + json.dumps(job.command) + """
[Unit]
Description=Job {name} of Flask app {app}
ConditionPathExists={root}/current
After=network.target

[Service]
Type=oneshot
User={user}
Group={user}
WorkingDirectory={root}/current
EnvironmentFile={env}
Environment=HOME=/tmp
SyslogIdentifier={u}
ExecStart=/bin/sh -c {runner} {wname} {wcommand}
{hardening}
""".format(name=job.name, app=app.name, root=app.root, user=app.user, env=app.env_file, u=u,
            runner=units.unit_word(RUNNER), wname=units.unit_word(job.name), wcommand=units.unit_word(job.command),
            hardening=units.hardening(app.root).rstrip("\n"))


def timer_unit(app: apps.App, job: Job) -> str:
    return HEADER + marker(app.name, job.name) + """
[Unit]
Description=Schedule of job {name} of Flask app {app}

[Timer]
OnCalendar={schedule}
AccuracySec=1s
Unit={u}.service

[Install]
WantedBy=timers.target
""".format(name=job.name, app=app.name, schedule=job.schedule, u=unit_of(app.name, job.name))


def jobs_of(host: Host, app: str) -> List[str]:
    """The names of the jobs whose units we wrote for APP (their timer carries our marker line)."""
    prefix = host.path("%s/%s" % (SYSTEMD, unit_of(app, "")))
    names = []
    for path in sorted(glob.glob(glob.escape(prefix) + "*.timer")):
        name = path[len(prefix):-len(".timer")]
        text = read_regular(path)
        if NAME.fullmatch(name) and text is not None and marker(app, name) in text.decode(errors="replace").splitlines():
            names.append(name)
    return names


def _remove(host: Host, app: str, name: str, log: Log) -> None:
    """Timer off, units gone (a run going on finishes)."""
    u = unit_of(app, name)
    host.run(["systemctl", "disable", "--now", "--quiet", u + ".timer"])
    for kind in ("timer", "service"):
        try:
            os.unlink(host.path("%s/%s.%s" % (SYSTEMD, u, kind)))
        except FileNotFoundError:
            pass
    host.run(["systemctl", "reset-failed", u + ".service", u + ".timer"])
    log("job %s removed" % name)


def calendar_errors(host: Host, jobs: Sequence[Job]) -> List[str]:
    """A message per schedule the server's `systemd-analyze calendar` refuses."""
    bad = []
    for j in jobs:
        r = host.run(["systemd-analyze", "calendar", "--", j.schedule], merge_output=True)
        if r.returncode != 0:
            why = ((r.stdout or "").strip().splitlines() or ["refused"])[-1]
            bad.append("flask-deploy:jobs.%s.schedule: '%s' is not a systemd calendar expression (OnCalendar): %s. %s"
                       % (j.name, j.schedule, why, SCHEDULE_HELP))
    return bad


def jobs_check(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP, JOBS: every schedule is a calendar expression systemd takes; changes nothing."""
    apps.check_name(params.get("APP"))
    jobs = check_jobs(params.get("JOBS"))
    bad = calendar_errors(host, jobs)
    if bad:
        raise AgentError("flask-deploy:jobs: a schedule systemd does not take; nothing on the server was changed\n" + "\n".join(bad))
    log("job schedules: %d valid" % len(jobs))
    return {"valid": len(jobs)}


def jobs_create(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP, JOBS: the units of JOBS written, timers on; the units of other jobs of APP removed."""
    jobs = check_jobs(params.get("JOBS"))
    app = apps.load(host, apps.check_name(params.get("APP")))
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        changed = []
        for j in jobs:
            base = host.path("%s/%s" % (SYSTEMD, unit_of(app.name, j.name)))
            c1 = write_atomic(base + ".service", service_unit(app, j).encode(), 0o644)
            c2 = write_atomic(base + ".timer", timer_unit(app, j).encode(), 0o644)
            if c1 or c2:
                changed.append(j.name)
        keep = {j.name for j in jobs}
        removed = [n for n in jobs_of(host, app.name) if n not in keep]
        for name in removed:
            _remove(host, app.name, name, log)
        host.systemctl("daemon-reload")
        out = []
        for j in jobs:
            u = unit_of(app.name, j.name) + ".timer"
            host.systemctl("enable", "--quiet", u)
            # a changed schedule takes effect now; an unchanged timer keeps its state
            host.systemctl("restart" if j.name in changed else "start", u)
            nxt = _show(host, u, "NextElapseUSecRealtime").get("NextElapseUSecRealtime", "")
            log("job %s: %s (next: %s)" % (j.name, j.schedule, timestamp(nxt) or "?"))
            out.append({"name": j.name, "schedule": j.schedule, "changed": j.name in changed, "nextRun": timestamp(nxt)})
    log("jobs: %d" % len(jobs))
    return {"jobs": out, "removed": removed}


def jobs_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP: every job unit of APP removed (the step's delete, pulumi destroy)."""
    app = apps.check_name(params.get("APP"))
    removed = jobs_of(host, app)
    for name in removed:
        _remove(host, app, name, log)
    host.systemctl("daemon-reload")
    log("jobs of %s removed" % app)
    return {"removed": removed}


# --- what systemd says of a job ---

def parse_props(text: str) -> Props:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _show(host: Host, unit: str, props: str) -> Props:
    r = host.run(["env", "TZ=UTC", "systemctl", "show", "--timestamp=unix", "-p", props, unit])
    return parse_props(r.stdout or "")


def timestamp(v: Optional[str]) -> Optional[str]:
    """"@<unix>" (--timestamp=unix) or, for some properties, "Sat 2026-12-05 09:31:55 UTC" (TZ=UTC)."""
    m = re.fullmatch(r"@(\d+)", v or "")
    if m:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(m[1])))
    m = re.fullmatch(r"\w+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC", v or "")
    return "%sT%sZ" % (m[1], m[2]) if m else None


def _line_value(text: Optional[bytes], prefix: str) -> Optional[str]:
    for line in (text or b"").decode(errors="replace").splitlines():
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


def job_state(name: str, timer_text: Optional[bytes], service_text: Optional[bytes], t: Props, s: Props) -> Dict[str, Any]:
    """One job as `fdeploy jobs` shows it: its units' schedule and command, the timer's state and the
    run S describes (service properties: systemd's last run since the boot, or the run jobs-run ran)."""
    schedule = _line_value(timer_text, "OnCalendar=")
    command = _line_value(service_text, "# command: ")
    started, ended = timestamp(s.get("ExecMainStartTimestamp")), timestamp(s.get("ExecMainExitTimestamp"))
    running = s.get("ActiveState") in ("activating", "deactivating")
    last: Optional[Dict[str, Any]] = None
    if started:
        code = {"1": "exited", "2": "killed", "3": "dumped"}.get(s.get("ExecMainCode", ""), s.get("ExecMainCode"))
        ok = s.get("Result") == "success" and s.get("ExecMainStatus") == "0"
        last = {"started": started, "ended": None if running else ended,
                "result": "running" if running else ("success" if ok else "failed"),
                "exitStatus": None if running else int(s.get("ExecMainStatus") or 0), "exit": code,
                "systemdResult": s.get("Result"), "invocation": s.get("InvocationID") or None}
    elif s.get("ConditionResult") == "no" and s.get("ConditionTimestamp"):
        last = {"started": None, "ended": None, "result": "skipped", "exitStatus": None, "note": "no live release yet"}
    return {"name": name, "schedule": schedule.strip() if schedule is not None else None,
            "command": json.loads(command) if command is not None else None, "timer": t.get("ActiveState"),
            "running": running, "lastRun": last, "lastTrigger": timestamp(t.get("LastTriggerUSec")),
            "nextRun": timestamp(t.get("NextElapseUSecRealtime"))}


def _job_json(host: Host, app: str, name: str, sprops: Optional[Props] = None) -> Dict[str, Any]:
    u = unit_of(app, name)
    base = host.path("%s/%s" % (SYSTEMD, u))
    return job_state(name, read_regular(base + ".timer"), read_regular(base + ".service"), _show(host, u + ".timer", TIMER_PROPS),
                     sprops if sprops is not None else _show(host, u + ".service", SERVICE_PROPS))


def jobs_list(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP: the jobs, their schedule, last run and next run."""
    app = apps.deployed(host, params.get("APP"))
    return {"jobs": [_job_json(host, app.name, n) for n in jobs_of(host, app.name)]}


# --- jobs-run ---
#
# How jobs-run finds its own run. A oneshot unit has one run at a time: `systemctl start` while a
# run is going on (the timer's) starts none — its start job merges into that run's and returns when
# that run ends. So jobs-run notes the unit's invocation id (that of the run going on, if one is),
# starts the unit and then asks which run its start job ran: --show-transaction names the job (the
# one it merged into, if it did), and the journal's "Starting" line of that job carries the id of
# the run it began. The noted id again means the start joined the run going on, which has ended
# now: start again. Any other run began after the request, in the live release of then: the
# request's run (the timer's too, when the timer was due again by the end of the run going on:
# systemd starts that one as the run going on ends, and the start joins it).

def transaction_job(output: str) -> Optional[int]:
    m = re.search(r"^Enqueued anchor job (\d+) ", output, re.M)
    return int(m[1]) if m else None


def _entries(host: Host, args: Sequence[str]) -> List[Entry]:
    r = host.run(["journalctl", "--no-pager", "-o", "json", *args])
    out = []
    for line in (r.stdout or "").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict):
            out.append(e)
    return out


def started_invocation(entries: Iterable[Entry]) -> str:
    """Of systemd's "Starting" lines of one systemd job, the invocation id of the run it began ("" if none)."""
    for e in entries:
        if e.get("MESSAGE_ID") == MSG_STARTING and e.get("INVOCATION_ID"):
            return str(e["INVOCATION_ID"])
    return ""


def props_from_journal(entries: Iterable[Entry], inv: str, job: int) -> Props:
    """Service properties of the (ended) run INV of systemd job JOB, from systemd's journal lines about
    it: when the unit has begun a further run since, its properties are that one's."""
    start = end = None
    code, status, result, job_result = "exited", 0, "success", "done"
    for e in entries:
        t, mid = int(e.get("__REALTIME_TIMESTAMP") or 0) // 1000000, e.get("MESSAGE_ID")
        if mid == MSG_STARTING:
            start = t
        elif mid == MSG_PROCESS_EXIT:
            code, status = e.get("EXIT_CODE", code), int(e.get("EXIT_STATUS", status))
        elif mid == MSG_FAILURE_RESULT:
            result = e.get("UNIT_RESULT", "failed")
        elif str(e.get("JOB_ID")) == str(job) and e.get("JOB_RESULT"):
            end, job_result = t, e["JOB_RESULT"]
    if result == "success" and job_result != "done":
        result = job_result
    return {"ActiveState": "inactive" if result == "success" else "failed",
            "ExecMainStartTimestamp": "@%d" % start if start else "", "ExecMainExitTimestamp": "@%d" % end if end else "",
            "ExecMainCode": str({"exited": 1, "killed": 2, "dumped": 3}.get(code, 1)), "ExecMainStatus": str(status),
            "Result": result, "InvocationID": inv}


def _message(e: Entry) -> str:
    m = e.get("MESSAGE") or ""
    return bytes(m).decode("utf-8", "replace") if isinstance(m, list) else str(m)


def run_lines(entries: Sequence[Entry], inv: str, ours: int, later: int, others: Set[str]) -> List[str]:
    """Of a job unit's journal lines, those of run INV, whose main process was OURS (0: not known),
    before the run whose main process was LATER (0: none or not known). The lines of a run are one
    stream (_STREAM_ID: journald's connection from the run's main process). A stream is the run's
    when a line of it was written by OURS or carries INV; another run's when it is one of OTHERS,
    a line carries another invocation id or comes from a process outside OURS..LATER (pids count
    up). journald gives a line its invocation id only while the run's cgroup exists (not a line it
    takes off the stream after the run ended), and the pid of the process that wrote it."""
    streams: Dict[Any, List[Entry]] = {}
    for e in entries:
        streams.setdefault(e.get("_STREAM_ID") or e.get("_PID"), []).append(e)
    ranged = not (ours and later and later < ours)   # (the pids wrapped around: no range)

    def pid(e: Entry) -> int:
        return int(e.get("_PID") or 0)

    def mine(es: List[Entry]) -> bool:
        return any(e.get("_SYSTEMD_INVOCATION_ID") == inv or (ours and pid(e) == ours) for e in es)

    def other(es: List[Entry]) -> bool:
        return any(e.get("_STREAM_ID") in others or e.get("_SYSTEMD_INVOCATION_ID") not in (None, inv) or
                   (ranged and ((ours and pid(e) < ours) or (later and pid(e) >= later))) for e in es)

    keep = {k for k, es in streams.items() if mine(es)} or {k for k, es in streams.items() if not other(es)}
    return [_message(e) for e in entries if (e.get("_STREAM_ID") or e.get("_PID")) in keep]


def _int(v: Optional[str]) -> int:
    return int(v) if v and v.isdigit() else 0


def start_after_request(host: Host, service: str, name: str, log: Log) -> Tuple[int, str, Props]:
    """Start SERVICE; after a run going on at the request has ended, a run of its own. The systemd
    job that ran that run, its invocation id ("" when the run was skipped: no live release) and the
    unit's properties before the start (one read: the run going on, if any)."""
    before = _show(host, service, "ActiveState,InvocationID")
    before_inv = before.get("InvocationID", "")
    going = before.get("ActiveState") in ("activating", "deactivating")
    if going:
        log("job %s is running now (started by its timer): waiting for that run to end, then running it (a job never runs twice at once)" % name)
    for _ in range(10):
        r = host.run(["systemctl", "start", "--show-transaction", service], merge_output=True)   # its result: read after
        props = _show(host, service, "InvocationID,ConditionResult")
        if going and before_inv and props.get("InvocationID") == before_inv:
            continue   # it joined the run going on, which has ended now, and none has begun since
        job = transaction_job(r.stdout or "")
        if job is None:
            raise AgentError("fdeploy jobs run %s: the job did not start: %s" % (name, " ".join((r.stdout or "").strip().splitlines()[-3:])))
        host.run(["journalctl", "--sync"])
        inv = started_invocation(_entries(host, ["-b", "_PID=1", "UNIT=" + service, "JOB_ID=%d" % job, "MESSAGE_ID=" + MSG_STARTING]))
        if not inv:
            if props.get("InvocationID") == before_inv and props.get("ConditionResult") == "no":
                return job, "", before   # nothing ran: no live release (ConditionPathExists)
            inv = props.get("InvocationID", "")   # (the journal lost the "Starting" line: the unit's own id, if new)
        if inv and inv != before_inv:
            return job, inv, before
        # (it joined the run going on, and the timer has begun a further one since: start again)
    raise AgentError("fdeploy jobs run %s: each of 10 starts joined a run its timer had begun just before; not run" % name)


def jobs_run(host: Host, params: Dict[str, Any], log: Log, lock_wait: int,
             sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """params APP, NAME: run the job now, after a run going on (the timer's) has ended, and wait for
    it; that run's output lines and its state (job_state)."""
    app = apps.deployed(host, params.get("APP"))
    name = check_name(params.get("NAME"))
    names = jobs_of(host, app.name)
    if name not in names:
        raise AgentError("no job '%s' on this server (its jobs: %s); jobs.%s in the stack's config and a pulumi up add it"
                         % (name, " ".join(names) or "none", name))
    u = unit_of(app.name, name) + ".service"
    since = "@%.6f" % time.time()   # whatever run begins from now on is after the request (run_lines picks ours)
    job, inv, before = start_after_request(host, u, name, log)
    props = _show(host, u, SERVICE_PROPS)
    if not inv:
        props.pop("ExecMainStartTimestamp", None)   # job_state: the run was skipped
        return {"output": [], "job": _job_json(host, app.name, name, props)}
    ours = later = 0
    if props.get("InvocationID") == inv:
        ours = _int(props.get("ExecMainPID"))
    else:   # the timer began a further run right after ours ended: ours from the journal
        later = _int(props.get("ExecMainPID"))
        props = props_from_journal(_entries(host, ["-b", "_PID=1", "UNIT=" + u, "INVOCATION_ID=" + inv]), inv, job)
    # the stream of the run going on at the request (its late lines come after the request too)
    before_inv = before.get("InvocationID", "")
    others = {str(e["_STREAM_ID"]) for e in (_entries(host, ["-b", "--output-fields=_STREAM_ID", "_SYSTEMD_UNIT=" + u,
                                                              "_SYSTEMD_INVOCATION_ID=" + before_inv]) if before_inv else [])
              if e.get("_STREAM_ID")}
    # its lines: wait up to 10 s for the first, then until no more come (journald reads the stream a
    # moment after the process ends)
    lines: List[str] = []
    seen = -1
    for _ in range(100):
        if not later:   # a further run begun meanwhile bounds the pids of ours
            now = _show(host, u, "InvocationID,ExecMainPID")
            later = _int(now.get("ExecMainPID"))
            if now.get("InvocationID") == inv or later == ours:
                later = 0
        host.run(["journalctl", "--sync"])
        lines = run_lines(_entries(host, ["--all", "--since", since, "_SYSTEMD_UNIT=" + u]), inv, ours, later, others)
        size = sum(len(x) + 1 for x in lines)
        if size > 0 and size == seen:
            break
        seen = size
        sleep(0.1)
    return {"output": lines, "job": _job_json(host, app.name, name, props)}
