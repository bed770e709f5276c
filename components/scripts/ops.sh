#!/usr/bin/env bash
# ops.sh VERB — the server side of `fdeploy` (cli/): day-2 operations on a deployed app. The agent
# (fdeploy_agent/ops.py) decides and reads; this is the glue that runs journalctl, tail, systemd-run
# or docker exec, and reloads nginx. Params as one JSON object on stdin (exec: its first line; the
# rest of stdin goes to the command). console takes APP as an argument instead: its stdin is the
# terminal. Exit 3: the app is not deployed here (cli/lib/stack.ts: "no app deployed").
#   status        one JSON object: live release and slots, health now, last deploy, disk, drift,
#                 maintenance (params: APP)
#   releases      {"releases": [...]}: the kept and past releases, newest first (params: APP)
#   logs          the app's journal, or with NGINX=true the site's access and error logs, or with
#                 JOB=<name> a scheduled job's journal (params: APP, SINCE, LINES, GREP, FOLLOW, NGINX, JOB)
#   exec          CMD (a JSON list of strings) in the live release, as the live slot's user, with
#                 its environment files, in the slots' sandbox (params: APP, CMD)
#   console APP   `flask shell` (or python) the same way, on a terminal
#   maintenance   MODE on|off, MESSAGE / HTML: nginx answers 503 with a page (params: APP, …)
#   lock          ACTION status|release: who holds the deploy lock; release stops the holders
. "$(dirname "$0")/lib.sh"

logs() {
  local out argv=() filter=()
  out=$(agent ops-logs --field argv <<<"$P_RAW")
  if [ -z "$out" ]; then   # nginx's logs without -f: the agent reads them (each line has its time, for --since)
    out=$(agent ops-nginx-lines --field lines <<<"$P_RAW")
    [ -z "$out" ] || printf '%s\n' "$out"
    return
  fi
  mapfile -t argv <<<"$out"
  out=$(agent ops-logs --field filter <<<"$P_RAW")
  [ -z "$out" ] || mapfile -t filter <<<"$out"
  if [ ${#filter[@]} -gt 0 ]; then "${argv[@]}" | "${filter[@]}"; else "${argv[@]}"; fi
}

# in_live_release [AGENT OPTIONS]: exec the agent's command line for P_RAW or the options (ops-exec:
# systemd-run in the slots' sandbox, or docker exec); its words are NUL-separated, since an argument
# may hold a newline
in_live_release() {
  local argv=()
  mapfile -d '' -t argv < <(agent ops-exec --field argvz "$@" <<<"${P_RAW:-}" | head -c -1)
  wait $! || exit   # the agent's status (3: not deployed); it said why
  [ ${#argv[@]} -gt 0 ] || fail "fdeploy exec: no command to run (fdeploy exec -- COMMAND ARGS…)"
  exec "${argv[@]}"
}

maintenance() {
  agent ops-maintenance --field mode <<<"$P_RAW" >/dev/null
  reload_nginx
  echo "maintenance $P_MODE"
}

# reload_nginx: reload, and return once the workers with the old configuration are gone (idle
# keep-alive connections are closed at once; a long request gets 10 s), so that the mode is in force
reload_nginx() {
  local old; old=$(pgrep -d ' ' -f '^nginx: worker process' || true)
  systemctl reload nginx
  for _ in $(seq 40); do
    local alive=0 p
    for p in $old; do [ -d "/proc/$p" ] && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.25
  done
  log "note: some nginx workers still finish requests with the previous configuration"
}

verb=${1:-}
case $verb in
  console) check_app_name "${2:-}"; in_live_release --app "$2" --set-json CONSOLE=true ;;
  exec) load_params_line; in_live_release ;;
  status) load_params; agent ops-status <<<"$P_RAW" ;;
  releases) load_params; agent ops-releases <<<"$P_RAW" ;;
  lock) load_params; agent ops-lock <<<"$P_RAW" ;;
  logs | maintenance) load_params; $verb ;;
  *) fail "usage: ops.sh status|releases|logs|exec|console APP|maintenance|lock" ;;
esac
