#!/usr/bin/env bash
# ops.sh VERB — the server side of `fdeploy` (cli/): day-2 operations on a deployed app. Read verbs
# change nothing; every verb is idempotent. Params as one JSON object on stdin (exec: its first
# line; the rest of stdin goes to the command). console takes APP as an argument instead: its stdin
# is the terminal.
#   status        one JSON object: live release and slots, health now, last deploy, disk, drift,
#                 maintenance (params: APP)
#   releases      JSON list of the kept and past releases, newest first (params: APP)
#   logs          the app's journal, or with NGINX=true the site's access and error logs, or with
#                 JOB=<name> a scheduled job's journal (params: APP, SINCE, LINES, GREP, FOLLOW, NGINX, JOB)
#   exec          CMD (a JSON list of strings) in the live release, as the app user, with its
#                 environment file, in the slots' sandbox (params: APP, CMD)
#   console APP   `flask shell` (or python) the same way, on a terminal
#   maintenance   MODE on|off, MESSAGE / HTML: nginx answers 503 with a page (params: APP, …)
#   lock          ACTION status|release: who holds the deploy lock; release stops the holders
. "$(dirname "$0")/lib.sh"

# not_deployed: exit 3 (cli/lib/stack.ts turns it into "no app deployed") when the app has no live release here
not_deployed() { log "error: app '$P_APP' is not deployed on this server${1:+ ($1)}"; exit 3; }
app_loaded() {
  load_settings "$P_APP" || not_deployed
  slots=$APP_ROOT/slots
  live_slot=$(cat "$slots/live" 2>/dev/null || echo main)
  release_dir=$(readlink -f "$slots/$live_slot" 2>/dev/null || true)
  [ -n "$release_dir" ] && [ -f "$release_dir/.fdeploy-release.json" ] || not_deployed "no live release"
}
maintenance_conf() { echo "$(env_dir "$P_APP")/maintenance.conf"; }   # intended state, root-only
maintenance_page_dir() { echo "$APP_ROOT/maintenance"; }              # root's, readable by nginx

status() {
  app_loaded
  local state health_path code
  state=$(printf '{"APP": "%s"}' "$P_APP" | bash "$(dirname "$0")/state.sh" now 2>/dev/null | tail -n 1) || state='{}'
  health_path=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("HEALTH_PATH", "/health"))' "$slots/activation.live.json" 2>/dev/null || echo /health)
  [[ $health_path =~ ^/[A-Za-z0-9._~/-]*$ ]] || health_path=/health
  code=$(http_probe "http://localhost$health_path" --unix-socket "$(socket_path "$P_APP" "$live_slot")" | cut -d' ' -f1 || true)
  local slot_states=()
  for s in "$slots"/*; do
    [ -L "$s" ] || continue
    s=$(basename "$s")
    slot_states+=("$s" "$(basename "$(readlink -f "$slots/$s")")" "$(systemctl show -p ActiveState --value "fdeploy-$P_APP@$s.service")/$(systemctl show -p SubState --value "fdeploy-$P_APP@$s.service")")
  done
  python3 - "$APP_ROOT" "$live_slot" "$release_dir" "$state" "$code" "$health_path" "$(maintenance_conf)" \
    "$(lock_record "$LOCK_DIR/$P_APP.lock")" "$(du -sb "$APP_ROOT/releases" | cut -f1)" \
    "$(du -sb "$APP_ROOT/shared/backups" 2>/dev/null | cut -f1)" "$(du -sb "$APP_ROOT/shared/db" 2>/dev/null | cut -f1)" \
    "${slot_states[@]}" <<'PY'
import json, os, sys, time, calendar
root, live_slot, rdir, state, code, hpath, mconf, owner, rel_b, bak_b, db_b, *slots = sys.argv[1:]
state = json.loads(state or "{}")
try: deployed = json.load(open(os.path.join(root, "slots/activation.live.json"))).get("RELEASE_ID", "")
except Exception: deployed = ""
hist = []
for line in open(os.path.join(root, "history.log")) if os.path.exists(os.path.join(root, "history.log")) else []:
    f = line.split()
    if len(f) >= 5: hist.append({"time": f[0], "release": f[1], "status": f[2], "strategy": f[3][9:], "schema": f[4][7:]})
rid = os.path.basename(rdir)
since = next((h["time"] for h in reversed(hist) if h["release"] == rid and h["status"] == "live"), None)
age = int(time.time() - calendar.timegm(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ"))) if since else None
meta = json.load(open(os.path.join(rdir, ".fdeploy-release.json")))
drift = [k for k in ("unitInForce", "envInForce", "siteInForce") if state.get(k) is False]
if state.get("running") is False: drift.append("notRunning")
if deployed and rid != deployed: drift.append("release")
m = {"on": os.path.exists(mconf)}
if m["on"]:
    head = open(mconf).readline()   # "# fdeploy maintenance: on since <time> by <user>"
    parts = head.split()
    m.update(since=parts[5] if len(parts) > 5 else None, by=parts[7] if len(parts) > 7 else None)
# strategy canary: a deploy shifting traffic step by step writes slots/canary.json (activate.sh)
try:
    canary = json.load(open(os.path.join(root, "slots/canary.json")))
    canary["inProgress"] = os.path.exists("/proc/%d" % int(canary.get("pid", 0)))
except Exception:
    canary = None
owner = owner.split()
last = hist[-1] if hist else None
if last and len(owner) == 3: last["by"] = owner[2]
print(json.dumps({
    "release": rid, "installedAt": meta.get("installed_at"), "liveSince": since, "ageSeconds": age,
    "liveSlot": live_slot,
    "slots": [{"name": slots[i], "release": slots[i + 1], "state": slots[i + 2]} for i in range(0, len(slots), 3)],
    "health": {"path": hpath, "status": int(code) if code.isdigit() else 0, "ok": code.startswith("2")},
    "lastDeploy": last, "deployedRelease": deployed,
    "disk": {"releasesBytes": int(rel_b or 0), "backupsBytes": int(bak_b or 0), "databaseBytes": int(db_b or 0)},
    "drift": drift, "maintenance": m, "canary": canary,
}))
PY
}

releases() {
  load_settings "$P_APP" || not_deployed
  local live; live=$(basename "$(readlink -f "$APP_ROOT/slots/$(cat "$APP_ROOT/slots/live" 2>/dev/null || echo main)" 2>/dev/null)" 2>/dev/null || true)
  python3 - "$APP_ROOT" "$live" <<'PY'
import json, os, sys
root, live = sys.argv[1:]
rels, order = {}, []
hist = os.path.join(root, "history.log")
for line in open(hist) if os.path.exists(hist) else []:
    f = line.split()
    if len(f) < 5: continue
    r = rels.setdefault(f[1], {"id": f[1], "firstLive": None, "lastLive": None, "failedAt": None, "schema": None})
    if f[2] == "live":
        r["firstLive"] = r["firstLive"] or f[0]; r["lastLive"] = f[0]; r["schema"] = int(f[4][7:] or 0)
    else:
        r["failedAt"] = f[0]
    if f[1] in order: order.remove(f[1])
    order.append(f[1])
rdir = os.path.join(root, "releases")
for d in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
    if d not in rels and os.path.exists(os.path.join(rdir, d, ".fdeploy-release.json")):
        rels[d] = {"id": d, "firstLive": None, "lastLive": None, "failedAt": None, "schema": None}; order.insert(0, d)
out = []
for rid in reversed(order):
    r = rels[rid]
    marker = os.path.join(rdir, rid, ".fdeploy-release.json")
    kept = os.path.exists(marker)
    r.update(kept=kept, live=rid == live, installedAt=json.load(open(marker)).get("installed_at") if kept else None,
             status="live" if rid == live else ("failed" if r["lastLive"] is None and r["failedAt"] else ("kept" if kept else "gone")))
    out.append(r)
print(json.dumps(out))
PY
}

logs() {
  load_settings "$P_APP" || not_deployed
  [[ ${P_LINES:-} =~ ^[0-9]{0,6}$ ]] || fail "bad line count '$P_LINES'"
  local n=${P_LINES:-100}
  if [ "${P_NGINX:-}" = true ]; then
    local files=("/var/log/nginx/fdeploy-$P_APP.access.log" "/var/log/nginx/fdeploy-$P_APP.error.log")
    if [ "${P_FOLLOW:-}" = true ]; then
      tail -n "$n" -F "${files[@]}" 2>/dev/null | { if [ -n "${P_GREP:-}" ]; then grep --line-buffered -E -e "$P_GREP"; else cat; fi; }
    else
      # --since: nginx lines carry their own times; keep those at or after it
      cat "${files[@]}" 2>/dev/null | python3 -c '
import re, sys, time, calendar
since, pat, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cut = None
if since:
    m = re.fullmatch(r"(\d+)([smhd])", since)
    cut = time.time() - int(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]] if m else None
def t(line):
    m = re.search(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) ([+-]\d{4})\]", line)
    if m: return calendar.timegm(time.strptime(m[1], "%d/%b/%Y:%H:%M:%S")) - (int(m[2][:3]) * 3600 + int(m[2][0] + m[2][3:]) * 60)
    m = re.match(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)", line)
    return calendar.timegm(time.strptime(m[1], "%Y/%m/%d %H:%M:%S")) if m else 0
out = [l for l in sys.stdin if (cut is None or t(l) >= cut) and (not pat or re.search(pat, l))]
out.sort(key=t)
sys.stdout.writelines(out[-n:] if n else out)' "${P_SINCE:-}" "${P_GREP:-}" "$n"
    fi
    return
  fi
  local unit="fdeploy-$P_APP@*"
  if [ -n "${P_JOB:-}" ]; then
    [[ $P_JOB =~ ^[a-z0-9][a-z0-9_-]{0,39}$ ]] || fail "bad job name '$P_JOB'"
    unit="fdeploy-$P_APP-job-$P_JOB.service"
  fi
  local args=(-u "$unit" --no-pager -o short-iso -n "$n")
  [ -n "${P_SINCE:-}" ] && args+=(--since "$(since_arg "$P_SINCE")")
  [ -n "${P_GREP:-}" ] && args+=(--grep "$P_GREP")
  [ "${P_FOLLOW:-}" = true ] && args+=(-f)
  journalctl "${args[@]}"
}
# since_arg 1h|30m|2d|<journalctl time>: journalctl's --since
since_arg() {
  if [[ $1 =~ ^([0-9]+)([smhd])$ ]]; then
    echo "-${BASH_REMATCH[1]}$(case ${BASH_REMATCH[2]} in s) echo s ;; m) echo min ;; h) echo h ;; d) echo d ;; esac)"
  else echo "$1"; fi
}

# in_live_release MODE ARGV…: run ARGV in the live release as the live slot's user (the agent's live-user), with the app's
# environment file and the slots' sandbox (hardening), in a transient unit; MODE --pipe or --pty
in_live_release() {
  local mode=$1 props=() line; shift
  # runtime docker: the live slot is a container of the release's image (service.sh), with no venv
  # on the host; the command runs in that container (its user, environment, mounts and sandbox)
  local container="fdeploy-$P_APP-$live_slot"
  if [ ! -d "$release_dir/.venv" ] && command -v docker >/dev/null && docker container inspect "$container" >/dev/null 2>&1; then
    local flags=(-i); [ "$mode" = --pty ] && flags=(-it)
    exec docker exec "${flags[@]}" "$container" "$@"
  fi
  while IFS= read -r line; do props+=(-p "$line"); done < <(hardening "$APP_ROOT")
  # systemd-run looks a command up in its own PATH: the venv's first, as the unit's PATH says
  if [[ $1 != */* ]]; then
    if [ -x "$release_dir/.venv/bin/$1" ]; then set -- "$release_dir/.venv/bin/$1" "${@:2}"
    else local found; found=$(PATH=/usr/local/bin:/usr/bin:/bin command -v -- "$1") || fail "command not found: $1"; set -- "$found" "${@:2}"; fi
  fi
  # the words are data: systemd expands $VAR in a command line unless told not to (≥ 254) or $$
  local literal=(--expand-environment=no)
  systemd-run --help 2>/dev/null | grep -q -- --expand-environment || { literal=(); set -- "${@//\$/\$\$}"; }
  local user; user=$(printf '{"APP": "%s"}' "$P_APP" | agent live-user --field user) || exit 1
  # the app's own environment (systemd reads the root-only file; nothing here prints it)
  exec systemd-run --quiet --wait --collect "$mode" "${literal[@]}" --unit="fdeploy-$P_APP-exec-$$" \
    -p User="$user" -p Group="$APP_USER" -p WorkingDirectory="$release_dir" \
    -p EnvironmentFile="$(env_file "$P_APP")" -p EnvironmentFile="$slots/$live_slot.env" \
    -p Environment="PATH=$release_dir/.venv/bin:/usr/local/bin:/usr/bin:/bin" -p Environment=HOME=/tmp \
    -p Environment=VIRTUAL_ENV="$release_dir/.venv" "${props[@]}" -- "$@"
}

run_exec() {
  local argv=()
  app_loaded
  mapfile -d '' -t argv < <(python3 -c '
import json, sys
cmd = json.loads(sys.argv[1])
assert isinstance(cmd, list) and cmd and all(isinstance(a, str) and "\0" not in a for a in cmd)
sys.stdout.write("".join(a + "\0" for a in cmd))' "${P_CMD:-}") || fail "bad command (expected a JSON list of strings)"
  [ ${#argv[@]} -gt 0 ] || fail "no command given"
  in_live_release --pipe "${argv[@]}"
}

console() {
  P_APP=${1:-}; check_app_name "$P_APP"
  app_loaded
  if [ -x "$release_dir/.venv/bin/flask" ]; then in_live_release --pty flask shell; fi
  in_live_release --pty python
}

maintenance() {
  load_settings "$P_APP" || not_deployed
  local conf page_dir; conf=$(maintenance_conf); page_dir=$(maintenance_page_dir)
  case ${P_MODE:-} in
    on)
      root_dir "$(env_dir "$P_APP")" 0700
      install -d -m 0755 "$page_dir"
      printf '%s' "${P_HTML:-}" | python3 -c '
import html, sys
page = sys.stdin.read()
if not page:
    msg = html.escape(sys.argv[1] or "The site is down for maintenance. Please try again shortly.")
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Maintenance</title></head>"
            "<body><h1>Down for maintenance</h1><p>%s</p></body></html>\n" % msg)
sys.stdout.write(page)' "${P_MESSAGE:-}" | write_if_changed "$page_dir/index.html" 0644 || true
      if [ -f "$conf" ]; then log "maintenance mode is already on (page updated)"; else
        # nginx includes this file in the app's site (nginx-site.ts): every request but the server's
        # own (health checks) and ACME challenges (certificate renewals) answers 503 with the page
        cat <<CONF | write_if_changed "$conf.new" 0600 || true
# fdeploy maintenance: on since $(date -u +%FT%TZ) by ${SUDO_USER:-${USER:-root}} (ops.sh; \`fdeploy maintenance off\` removes it)
set \$fdeploy_maintenance 1;
if (\$remote_addr = 127.0.0.1) { set \$fdeploy_maintenance 0; }
if (\$uri = /fdeploy-maintenance.html) { set \$fdeploy_maintenance 0; }
if (\$uri ~ ^/\.well-known/acme-challenge/) { set \$fdeploy_maintenance 0; }
if (\$fdeploy_maintenance) { return 503; }
error_page 503 /fdeploy-maintenance.html;
location = /fdeploy-maintenance.html { internal; alias $page_dir/index.html; default_type text/html; add_header Retry-After 120 always; add_header Cache-Control no-store always; }
CONF
        mv -f "$conf.new" "$conf"
      fi
      grep -qs "include $(env_dir "$P_APP")/maintenance.con" "/etc/nginx/sites-enabled/fdeploy-$P_APP.conf" ||
        log "warning: the nginx site in force predates maintenance mode; it takes effect after the next pulumi up"
      ;;
    off) rm -f "$conf" ;;
    *) fail "usage: maintenance MODE=on|off" ;;
  esac
  if ! out=$(nginx -t 2>&1); then
    [ "$P_MODE" = on ] && rm -f "$conf"
    printf '%s\n' "$out" >&2; fail "nginx rejects its configuration; maintenance mode unchanged"
  fi
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

# lock_pids: the processes that hold the app's deploy lock open (flock is released when they end)
lock_pids() {
  local lock=$LOCK_DIR/$P_APP.lock fd
  for fd in /proc/[0-9]*/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "$lock" ] && { p=${fd#/proc/}; echo "${p%%/*}"; }
  done | sort -un
}
lock() {
  local lock=$LOCK_DIR/$P_APP.lock held=false pids=() p
  [ -d "$LOCK_DIR" ] && [ -f "$lock" ] && ! flock -n "$lock" true && held=true
  [ $held = true ] && mapfile -t pids < <(lock_pids)
  if [ "${P_ACTION:-status}" = release ] && [ $held = true ]; then
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 20); do flock -n "$lock" true && break; sleep 0.5; done
    flock -n "$lock" true || { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; sleep 1; }
    flock -n "$lock" true || fail "the lock is still held (processes ${pids[*]})"
    log "released the deploy lock of '$P_APP' (stopped processes ${pids[*]})"
    held=false; pids=()
  fi
  local procs=()
  for p in "${pids[@]}"; do procs+=("$p" "$(ps -o user= -p "$p" 2>/dev/null || true)" "$(ps -o lstart= -p "$p" 2>/dev/null || true)" "$(cat "/proc/$p/cmdline" 2>/dev/null | tr '\0' ' ' | cut -c1-200)"); done
  python3 - "$held" "$(cat "$lock.owner" 2>/dev/null || echo unknown)" "${procs[@]}" <<'PY'
import json, sys
held, owner, *p = sys.argv[1:]
o = owner.split()
print(json.dumps({"held": held == "true",
  "owner": {"pid": int(o[0]), "since": o[1], "user": o[2]} if held == "true" and len(o) == 3 else None,
  "processes": [{"pid": int(p[i]), "user": p[i + 1].strip(), "started": p[i + 2].strip(), "command": p[i + 3].strip()} for i in range(0, len(p), 4)]}))
PY
}

verb=${1:-}
case $verb in
  console) console "${2:-}" ;;
  exec) load_params_line; run_exec ;;
  status | releases | logs | maintenance | lock) load_params; $verb ;;
  *) fail "usage: ops.sh status|releases|logs|exec|console APP|maintenance|lock" ;;
esac
