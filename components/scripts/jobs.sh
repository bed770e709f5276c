#!/usr/bin/env bash
# jobs.sh VERB — the app's scheduled jobs (stack config `jobs.<name>`), each a pair of units:
#   fdeploy-<app>-job-<name>.timer    OnCalendar=<schedule> (AccuracySec=1s)
#   fdeploy-<app>-job-<name>.service  Type=oneshot: `/bin/sh -c <command>` in the live release
#       (APP_ROOT/current, resolved once when a run starts: the run keeps that release's code to its
#       end, the next run takes the release live then), its venv first on PATH, RELEASE_ID, as the
#       app user, with the app's environment file (read by systemd) and the slots' sandbox; output
#       to the journal. A oneshot unit has one run at a time: the timer firing while a run is going
#       on starts no second one; `fdeploy jobs run` then waits for that run to end and runs its own.
# Our units carry the line "# fdeploy-job app=<app> name=<name>"; nothing else is ever touched.
#   check         params APP, JOBS: every schedule is a calendar expression systemd takes; changes nothing
#   create        params APP, JOBS: the units of JOBS written, timers on; units of other jobs removed
#   delete APP    every job unit of APP removed
#   list          params APP: JSON list of the jobs, their schedule, last run and next run
#   run           params APP, NAME: run the job now and wait; that run's journal lines, then one JSON line
# JOBS: JSON object name -> {schedule, command}
. "$(dirname "$0")/lib.sh"

job_unit() { echo "fdeploy-$1-job-$2"; }
marker() { echo "# fdeploy-job app=$1 name=$2"; }

# jobs_of APP: the names of the jobs whose units this script wrote for APP
jobs_of() {
  local f name
  for f in /etc/systemd/system/fdeploy-"$1"-job-*.timer; do
    [ -f "$f" ] || continue
    name=${f#/etc/systemd/system/fdeploy-"$1"-job-}; name=${name%.timer}
    grep -qxF "$(marker "$1" "$name")" "$f" && echo "$name"
  done
  return 0
}

# read_jobs: P_JOBS -> arrays names, schedules, commands (validated like components/config.ts)
read_jobs() {
  local fields=()
  mapfile -d '' -t fields < <(printf '%s' "${P_JOBS:-"{}"}" | python3 -c '
import json, re, sys
jobs = json.load(sys.stdin)
assert isinstance(jobs, dict)
for name, j in sorted(jobs.items()):
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name), name
    s, c = j["schedule"].strip(), j["command"]
    assert re.fullmatch(r"[A-Za-z0-9*:.,/~_+ -]{1,200}", s), s
    assert c.strip() and not re.search(r"[\r\n\0]", c), c
    sys.stdout.write(name + "\0" + s + "\0" + c + "\0")')
  wait $! || fail "bad job definitions (expected a JSON object name -> {schedule, command})"
  names=(); schedules=(); commands=()
  local i
  for ((i = 0; i < ${#fields[@]}; i += 3)); do
    names+=("${fields[i]}"); schedules+=("${fields[i + 1]}"); commands+=("${fields[i + 2]}")
  done
}

check() {
  read_jobs
  local i out bad=()
  for i in "${!names[@]}"; do
    if ! out=$(systemd-analyze calendar -- "${schedules[i]}" 2>&1); then
      bad+=("flask-deploy:jobs.${names[i]}.schedule: '${schedules[i]}' is not a systemd calendar expression (OnCalendar): $(printf '%s' "$out" | tail -n 1). Expected e.g. hourly, daily, '*-*-* 03:00:00', 'Mon..Fri 09:00' or '*:0/15' (man systemd.time)")
    fi
  done
  if [ ${#bad[@]} -gt 0 ]; then printf 'error: %s\n' "${bad[@]}" >&2; fail "nothing on the server was changed"; fi
  echo "job schedules: ${#names[@]} valid"
}

# The runner (`sh -c RUNNER <name> <command>`): the live release as the working directory
# systemd entered, resolved once, so the whole run uses one release's code and venv.
RUNNER='r=$(pwd -P) && export PATH="$r/.venv/bin:/usr/local/bin:/usr/bin:/bin" VIRTUAL_ENV="$r/.venv" RELEASE_ID="${r##*/}" && exec /bin/sh -c "$1" "$0"'

write_job() { # write_job NAME SCHEDULE COMMAND: 0 when a unit changed
  local u; u=$(job_unit "$P_APP" "$1")
  local changed=1
  cat <<UNIT | write_if_changed "/etc/systemd/system/$u.service" 0644 && changed=0
# Managed by flask-deploy (components/scripts/jobs.sh). Do not edit: the next deploy rewrites it.
$(marker "$P_APP" "$1")
# command: $(printf '%s' "$3" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')
[Unit]
Description=Job $1 of Flask app $P_APP
ConditionPathExists=$APP_ROOT/current
After=network.target

[Service]
Type=oneshot
User=$APP_USER
Group=$APP_USER
WorkingDirectory=$APP_ROOT/current
EnvironmentFile=$(env_file "$P_APP")
Environment=HOME=/tmp
SyslogIdentifier=$u
ExecStart=/bin/sh -c $(unit_word "$RUNNER") $(unit_word "$1") $(unit_word "$3")
$(hardening "$APP_ROOT")
UNIT
  cat <<UNIT | write_if_changed "/etc/systemd/system/$u.timer" 0644 && changed=0
# Managed by flask-deploy (components/scripts/jobs.sh). Do not edit: the next deploy rewrites it.
$(marker "$P_APP" "$1")
[Unit]
Description=Schedule of job $1 of Flask app $P_APP

[Timer]
OnCalendar=$2
AccuracySec=1s
Unit=$u.service

[Install]
WantedBy=timers.target
UNIT
  return $changed
}

remove_job() { # remove_job APP NAME: timer off, units gone (a run going on finishes)
  local u; u=$(job_unit "$1" "$2")
  systemctl disable --now --quiet "$u.timer" 2>/dev/null || true
  rm -f "/etc/systemd/system/$u.timer" "/etc/systemd/system/$u.service"
  systemctl reset-failed "$u.service" "$u.timer" 2>/dev/null || true
  log "job $2 removed"
}

create() {
  read_jobs
  load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
  with_deploy_lock
  local i name changed=() keep=" ${names[*]} "
  for i in "${!names[@]}"; do
    write_job "${names[i]}" "${schedules[i]}" "${commands[i]}" && changed+=("${names[i]}")
  done
  for name in $(jobs_of "$P_APP"); do
    [[ $keep == *" $name "* ]] || remove_job "$P_APP" "$name"
  done
  systemctl daemon-reload
  for i in "${!names[@]}"; do
    local u; u=$(job_unit "$P_APP" "${names[i]}")
    systemctl enable --quiet "$u.timer"
    # a changed schedule takes effect now; an unchanged timer keeps its state
    if [[ " ${changed[*]} " == *" ${names[i]} "* ]]; then systemctl restart "$u.timer"; else systemctl start "$u.timer"; fi
    echo "job ${names[i]}: ${schedules[i]} (next: $(systemctl show -p NextElapseUSecRealtime --value "$u.timer"))"
  done
  echo "jobs: ${#names[@]}"
}

delete() {
  local app=$1 name
  check_app_name "$app"
  for name in $(jobs_of "$app"); do remove_job "$app" "$name"; done
  systemctl daemon-reload
  echo "jobs of $app removed"
}

# service_props UNIT: a job's service unit as `systemctl show` lines (its last run: what job_json reads)
service_props() {
  TZ=UTC systemctl show --timestamp=unix \
    -p ActiveState,ExecMainStartTimestamp,ExecMainExitTimestamp,ExecMainCode,ExecMainStatus,ExecMainPID,Result,ConditionResult,ConditionTimestamp,InvocationID "$1"
}
prop() { sed -n "s/^$1=//p" <<<"$2"; }   # prop NAME PROPS: one value of service_props' lines

# job_json NAME [PROPS]: one job's state as JSON (systemd's view: the last run since the server
# booted); with PROPS (service_props lines), the run they describe instead
job_json() {
  local u; u=$(job_unit "$P_APP" "$1")
  local props=${2:-}
  [ -n "$props" ] || props=$(service_props "$u.service")
  python3 - "$1" "/etc/systemd/system/$u.timer" "/etc/systemd/system/$u.service" \
    "$(TZ=UTC systemctl show --timestamp=unix -p NextElapseUSecRealtime,LastTriggerUSec,ActiveState,UnitFileState "$u.timer")" \
    "$props" <<'PY'
import json, re, sys, time
name, timer, service, tprops, sprops = sys.argv[1:]
def props(text):
    return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)
def ts(v):   # "@<unix>" (--timestamp=unix) or, for some properties, "Sat 2026-12-05 09:31:55 UTC" (TZ=UTC)
    m = re.fullmatch(r"@(\d+)", v or "")
    if m: return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(m[1])))
    m = re.fullmatch(r"\w+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC", v or "")
    return "%sT%sZ" % (m[1], m[2]) if m else None
t, s = props(tprops), props(sprops)
schedule = next((l.split("=", 1)[1].strip() for l in open(timer) if l.startswith("OnCalendar=")), None)
command = next((json.loads(l[len("# command: "):]) for l in open(service) if l.startswith("# command: ")), None)
started, ended = ts(s.get("ExecMainStartTimestamp")), ts(s.get("ExecMainExitTimestamp"))
running = s.get("ActiveState") in ("activating", "deactivating")
last = None
if started:
    code = {"1": "exited", "2": "killed", "3": "dumped"}.get(s.get("ExecMainCode"), s.get("ExecMainCode"))
    ok = s.get("Result") == "success" and s.get("ExecMainStatus") == "0"
    last = {"started": started, "ended": None if running else ended,
            "result": "running" if running else ("success" if ok else "failed"),
            "exitStatus": None if running else int(s.get("ExecMainStatus") or 0), "exit": code, "systemdResult": s.get("Result"),
            "invocation": s.get("InvocationID") or None}
elif s.get("ConditionResult") == "no" and s.get("ConditionTimestamp"):
    last = {"started": None, "ended": None, "result": "skipped", "exitStatus": None, "note": "no live release yet"}
print(json.dumps({"name": name, "schedule": schedule, "command": command, "timer": t.get("ActiveState"),
                  "running": running, "lastRun": last, "lastTrigger": ts(t.get("LastTriggerUSec")),
                  "nextRun": ts(t.get("NextElapseUSecRealtime"))}))
PY
}

list() {
  load_settings "$P_APP" || { log "error: app '$P_APP' is not deployed on this server"; exit 3; }
  local name out=()
  for name in $(jobs_of "$P_APP"); do out+=("$(job_json "$name")"); done
  python3 -c 'import json,sys; print(json.dumps([json.loads(a) for a in sys.argv[1:]]))' "${out[@]}"
}

# How `run` finds its own run. A oneshot unit has one run at a time: `systemctl start` while a run
# is going on (the timer's) starts none — its start job merges into that run's and returns when that
# run ends. So run notes the unit's invocation id (that of the run going on, if one is), starts the
# unit and then asks which run its start job ran. If the unit's id is still the noted one and a run
# was going on, the start joined that run, which has ended now: start again, at once. Otherwise
# systemctl --show-transaction named the job (the one it merged into, if it did), and the journal's
# "Starting" line of that job carries the id of the run it began: the noted id again means it joined
# the run going on (and the timer has begun a further one since): start again. Any other run began
# after the request, in the live release of then: the request's run. That is the timer's when the
# timer was due again by the end of the run going on (a job that takes longer than its period):
# systemd starts that one as the run going on ends, and the start joins it. (No acting later on a
# state read before, no comparing of clocks.)
MSG_STARTING=7d4958e842da4a758f6c1cdc7b36dcc5        # systemd's catalog: "Starting <unit>…"
MSG_PROCESS_EXIT=98e322203f7a4ed290d09fe03c09fe15    # "Main process exited, code=…, status=…"
MSG_FAILURE_RESULT=d9b373ed55a64feb8242e02dbe79a49c  # "Failed with result '…'"

# started_invocation UNIT JOB: the invocation id of the run systemd job JOB started ("" if none)
started_invocation() {
  journalctl -b --no-pager -o json _PID=1 "UNIT=$1" "JOB_ID=$2" "MESSAGE_ID=$MSG_STARTING" 2>/dev/null |
    python3 -c 'import json, sys
ids = [json.loads(l).get("INVOCATION_ID", "") for l in sys.stdin if l.strip()]
print(ids[0] if ids else "")' || true
}

# props_from_journal UNIT INVOCATION JOB: service_props lines of that (ended) run, from systemd's
# journal lines about it — when the unit has begun a further run since, its properties are that one's
props_from_journal() {
  journalctl -b --no-pager -o json _PID=1 "UNIT=$1" "INVOCATION_ID=$2" 2>/dev/null |
    python3 -c '
import json, sys
inv, job, starting, exited, failure = sys.argv[1:]
start = end = None; code, status, result, job_result = "exited", 0, "success", "done"
for line in sys.stdin:
    e = json.loads(line); t = int(e["__REALTIME_TIMESTAMP"]) // 1000000; mid = e.get("MESSAGE_ID")
    if mid == starting: start = t
    elif mid == exited: code, status = e.get("EXIT_CODE", code), int(e.get("EXIT_STATUS", status))
    elif mid == failure: result = e.get("UNIT_RESULT", "failed")
    elif e.get("JOB_ID") == job and e.get("JOB_RESULT"): end, job_result = t, e["JOB_RESULT"]
if result == "success" and job_result != "done": result = job_result
print("ActiveState=%s" % ("inactive" if result == "success" else "failed"))
print("ExecMainStartTimestamp=%s" % ("@%d" % start if start else ""))
print("ExecMainExitTimestamp=%s" % ("@%d" % end if end else ""))
print("ExecMainCode=%d" % {"exited": 1, "killed": 2, "dumped": 3}.get(code, 1))
print("ExecMainStatus=%d" % status)
print("Result=%s" % result)
print("InvocationID=%s" % inv)' "$2" "$3" "$MSG_STARTING" "$MSG_PROCESS_EXIT" "$MSG_FAILURE_RESULT"
}

# run_lines INVOCATION OURPID LATERPID OTHERS: of journalctl -o json's lines of a job's unit (stdin),
# the lines of the run INVOCATION, whose main process was OURPID ("" if not known), before the run
# whose main process was LATERPID ("" if none or not known). The lines of one run are one stream
# (_STREAM_ID: journald's connection from the run's main process). A stream is the run's when a line
# of it was written by OURPID or carries INVOCATION; another run's when it is one of OTHERS (stream
# ids), a line carries another invocation id or comes from a process outside OURPID..LATERPID (pids
# count up: the run's processes have the pids from its main process's on, up to the next run's).
# journald gives a line its invocation id only while the run's cgroup exists (not a line it takes off
# the stream after the run ended), and the pid of the process that wrote it (a job's child, often).
run_lines() {
  python3 -c '
import json, sys
inv, ours, later, others = sys.argv[1], int(sys.argv[2] or 0), int(sys.argv[3] or 0), set(sys.argv[4].split())
entries = [json.loads(l) for l in sys.stdin if l.strip()]
streams = {}
for e in entries:
    streams.setdefault(e.get("_STREAM_ID") or e.get("_PID"), []).append(e)
ranged = not (ours and later and later < ours)   # (the pids wrapped around: no range)
def pid(e): return int(e.get("_PID") or 0)
def mine(es): return any(e.get("_SYSTEMD_INVOCATION_ID") == inv or (ours and pid(e) == ours) for e in es)
def other(es): return any(e.get("_STREAM_ID") in others or e.get("_SYSTEMD_INVOCATION_ID") not in (None, inv) or
                          (ranged and ((ours and pid(e) < ours) or (later and pid(e) >= later))) for e in es)
keep = {k for k, es in streams.items() if mine(es)} or {k for k, es in streams.items() if not other(es)}
for e in entries:
    if (e.get("_STREAM_ID") or e.get("_PID")) in keep:
        m = e.get("MESSAGE") or ""
        print(bytes(m).decode("utf-8", "replace") if isinstance(m, list) else m)' "$@"
}

run() {
  load_settings "$P_APP" || { log "error: app '$P_APP' is not deployed on this server"; exit 3; }
  [[ ${P_NAME:-} =~ ^[a-z0-9][a-z0-9_-]{0,39}$ ]] || fail "bad job name '${P_NAME:-}'"
  local jobs; jobs=$(jobs_of "$P_APP")
  grep -qxF "$P_NAME" <<<"$jobs" || fail "no job '$P_NAME' on this server (its jobs: $(paste -sd' ' <<<"${jobs:-none}")); jobs.$P_NAME in the stack's config and a pulumi up add it"
  local u; u=$(job_unit "$P_APP" "$P_NAME").service
  local attempt before_inv going=false since out job inv="" props ours=""
  # the run going on now, if any, and the time: whatever run begins from now on is a run after the request
  since=$(date +%s.%6N)
  props=$(service_props "$u"); before_inv=$(prop InvocationID "$props")
  case $(prop ActiveState "$props") in
    activating | deactivating) going=true
      log "job $P_NAME is running now (started by its timer): waiting for that run to end, then running it (a job never runs twice at once)" ;;
  esac
  for attempt in $(seq 10); do
    out=$(systemctl start --show-transaction "$u" 2>&1) || true   # its result: read below
    props=$(service_props "$u")
    # it joined the run going on, which has ended now, and none has begun since: start again at once
    if $going && [ -n "$before_inv" ] && [ "$(prop InvocationID "$props")" = "$before_inv" ]; then continue; fi
    job=$(sed -n 's/^Enqueued anchor job \([0-9][0-9]*\) .*/\1/p' <<<"$out" | head -n 1)
    [ -n "$job" ] || fail "job $P_NAME did not start: $(tail -n 3 <<<"$out")"
    journalctl --sync 2>/dev/null || true
    inv=$(started_invocation "$u" "$job")
    if [ -z "$inv" ]; then
      inv=$(prop InvocationID "$props")
      # (a new run, and no "Starting" line of it: the journal lost it)
      if [ -n "$inv" ] && [ "$inv" != "$before_inv" ]; then ours=run; break; fi
      [ "$(prop ConditionResult "$props")" = no ] && { ours=skipped; break; }   # no live release
      fail "job $P_NAME did not start: $(tail -n 3 <<<"$out")"
    fi
    [ "$inv" = "$before_inv" ] || { ours=run; break; }
    # (it joined the run going on, and the timer has begun a further one since: start again)
  done
  [ -n "$ours" ] || fail "job $P_NAME: its start joined the run going on $attempt times; not run"
  # the run's output: its lines in the journal since the start (run_lines). Wait up to 10 s for the
  # first line, then until no more come. (Not --after-cursor: with a match, journalctl skips the first
  # matching line.)
  local ourpid="" laterpid="" others="" now lines="" size seen=-1 i
  if [ "$ours" = skipped ]; then
    props=$(grep -v '^ExecMainStartTimestamp=' <<<"$props")   # job_json: the run was skipped
  elif [ "$(prop InvocationID "$props")" = "$inv" ]; then
    ourpid=$(prop ExecMainPID "$props")
  else   # the timer began a further run right after ours ended: ours from the journal
    laterpid=$(prop ExecMainPID "$props")
    props=$(props_from_journal "$u" "$inv" "$job")
  fi
  # the stream of the run going on at the request (its late lines come after the request too)
  [ -z "$before_inv" ] || others=$(journalctl -b --no-pager -o json --output-fields=_STREAM_ID "_SYSTEMD_UNIT=$u" \
    "_SYSTEMD_INVOCATION_ID=$before_inv" 2>/dev/null | python3 -c 'import json, sys
print(" ".join({json.loads(l).get("_STREAM_ID", "") for l in sys.stdin if l.strip()}))' || true)
  [ "$ours" = skipped ] || for i in $(seq 100); do
    if [ -z "$laterpid" ]; then   # a further run begun meanwhile bounds the pids of ours
      now=$(service_props "$u")
      laterpid=$(prop ExecMainPID "$now")   # (the new run's, once systemd has it)
      if [ "$(prop InvocationID "$now")" = "$inv" ] || [ "$laterpid" = 0 ] || [ "$laterpid" = "$ourpid" ]; then laterpid=""; fi
    fi
    journalctl --sync 2>/dev/null || true
    lines=$(journalctl --no-pager --all -o json --since "@$since" "_SYSTEMD_UNIT=$u" 2>/dev/null |
      run_lines "$inv" "$ourpid" "$laterpid" "$others" || true)
    size=${#lines}
    [ "$size" -gt 0 ] && [ "$size" = "$seen" ] && break
    seen=$size; sleep 0.1
  done
  [ -z "$lines" ] || printf '%s\n' "$lines"
  job_json "$P_NAME" "$props"
}

case ${1:-} in
  check | create | list | run) load_params; $1 ;;
  delete) delete "${2:-}" ;;
  *) fail "usage: jobs.sh check|create|list|run (JSON on stdin) | delete APP" ;;
esac
