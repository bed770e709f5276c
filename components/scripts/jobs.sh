#!/usr/bin/env bash
# jobs.sh VERB — the app's scheduled jobs (stack config `jobs.<name>`): glue to the agent's verbs
# (agent/fdeploy_agent/jobs.py: the units, their checks and the runs), one JSON result on stdout.
#   check         params APP, JOBS: every schedule is a calendar expression systemd takes; changes nothing
#   create        params APP, JOBS: the units of JOBS written, timers on; units of other jobs removed
#   delete APP    every job unit of APP removed
#   list          params APP: {"jobs": [the jobs, their schedule, last run and next run]}
#   run           params APP, NAME: run the job now (after a run going on) and wait: {"output", "job"}
# JOBS: JSON object name -> {schedule, command}
. "$(dirname "$0")/lib.sh"

case ${1:-} in
  check | create) load_params; agent "jobs-$1" <<<"$P_RAW" ;;
  list | run)
    load_params
    load_settings "$P_APP" || { log "error: app '$P_APP' is not deployed on this server"; exit 3; }
    agent "jobs-$1" <<<"$P_RAW" ;;
  delete)   # (a delete step has no stdin: the app name, checked, is the parameter)
    check_app_name "${2:-}"
    agent jobs-delete --app "$2" ;;
  *) fail "usage: jobs.sh check|create|list|run (JSON on stdin) | delete APP" ;;
esac
