#!/usr/bin/env bash
# activate.sh create — the switch point of every deploy: make RELEASE_ID the live release with the
# stack's strategy (restart | rolling | blue-green | canary, see each function below), health-check it on
# its own socket, and keep the previous release serving if the check fails.
# Slots are instances of the units fdeploy-<app>@<slot> (service.sh); slots/<slot> -> a release,
# slots/live names the slot nginx proxies to. After a successful switch: APP_ROOT/current -> the
# release, an entry in APP_ROOT/history.jsonl (the agent's history.py), and old releases pruned
# (slot targets always kept; the agent's prune). Its one line on stdout: the agent's JSON result,
# the history after it.
# params: APP, RELEASE_ID, STRATEGY, HEALTH_PATH, HEALTH_TIMEOUT, KEEP_RELEASES, APP_MODULE,
#         ROLLBACK (1: a rollback pinned this kept release; the history records it as one, with the
#         schema version the release went live with, which migrate.sh brings the database down to)
#         CANARY_* (strategy canary: steps, stepSeconds, gates; see activate_canary)
#         RUNTIME (python, the default, or docker: the slots are containers of the release's image,
#         fdeploy-<app>:<id>, see service.sh; no socket units, no preflight — a new slot's own check
#         catches what does not load), IMAGE_ID (docker: only makes Pulumi re-run this)
#         (other params, e.g. revisions of the unit and .env, only make Pulumi re-run this)
. "$(dirname "$0")/lib.sh"
load_params
[[ $P_RELEASE_ID =~ ^[0-9a-f]{12}$ ]] || fail "bad release id '$P_RELEASE_ID'"
[[ $P_HEALTH_PATH =~ ^/[A-Za-z0-9._~/-]*$ ]] || fail "bad health path '$P_HEALTH_PATH'"
[[ $P_HEALTH_TIMEOUT =~ ^[0-9]{1,3}$ && $P_KEEP_RELEASES =~ ^[0-9]{1,2}$ ]] || fail "bad timeout or keep count"
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock

release=$APP_ROOT/releases/$P_RELEASE_ID
slots=$APP_ROOT/slots
[ -f "$release/.fdeploy-release.json" ] || fail "release $P_RELEASE_ID is not installed on this server (pulumi up installs it)"
if [ -n "${P_ROLLBACK:-}" ]; then
  [ -n "$(agent history --field schema <<<"$P_RAW")" ] ||
    fail "release $P_RELEASE_ID never went live on this server: a rollback (the stack's \`release\` setting) can only pin one that did (see the releaseHistory output)"
fi
install -d -m 0755 "$slots"
runtime=${P_RUNTIME:-python}
[[ $runtime =~ ^(python|docker)$ ]] || fail "bad runtime '$runtime'"
if [ "$runtime" = docker ]; then
  docker image inspect "fdeploy-$P_APP:$P_RELEASE_ID" >/dev/null 2>&1 ||
    fail "image fdeploy-$P_APP:$P_RELEASE_ID is not on this server's Docker engine: flask-deploy:release can pin only a release whose image is kept"
else   # the release loads the rendered shared files, never stand-ins the live app put in their place
  agent shared-relink <<<"$P_RAW" >/dev/null || exit 1
fi

# point_slot SLOT RELEASE_DIR [USER]: the slot's code, its RELEASE_ID, the Gunicorn options its
# release's Gunicorn version takes (GUNICORN_FLAGS: the agent's slot-env) and the user it runs as
# (a drop-in of the slot's unit, the agent's slot-user): the new release's slot user unless USER
# says otherwise (runtime docker: none, the unit runs docker as root, the container as the app user)
point_slot() {
  local env user=${3-$NEW_USER}
  env=$(agent slot-env --app "$P_APP" --set RELEASE_ID="$(basename "$2")" --field text) || exit 1
  printf '%s\n' "$env" | write_if_changed "$slots/$1.env" 0644 || true
  [ "$runtime" = docker ] && user=""
  agent slot-user --app "$P_APP" --set SLOT="$1" --set USER="$user" >/dev/null || exit 1
  atomic_symlink "$2" "$slots/$1"
}

# check_slot SLOT: the app answers its health path on the slot's own socket; a process that exits
# fails it at once with the journal's why (the agent's slot-check; every value checked above)
check_slot() {
  local passed
  passed=$(agent slot-check --app "$P_APP" --set SLOT="$1" --set HEALTH_PATH="$P_HEALTH_PATH" \
    --set HEALTH_TIMEOUT="$P_HEALTH_TIMEOUT" --set RUNTIME="$runtime" --field passed) || return 1
  [ "$passed" = True ]
}

# record live|failed: the activation's entry in the history (the agent's history-live, history-failed).
# Its schema version is the root-owned migration set's that migrate.sh applied, never the app's
# database's (the app controls that: a forged version would steer the next rollback's `migrate.py
# down`). The strategy is the one that ran (a canary that fell back: blue-green); every value here
# was checked above. The result of history-live (the history after it) is this step's stdout.
record() {
  local params=(--app "$P_APP" --set RELEASE_ID="$P_RELEASE_ID" --set STRATEGY="$P_STRATEGY" --set ROLLBACK="${P_ROLLBACK:+1}")
  if [ "$1" = live ]; then agent history-live "${params[@]}"; else agent history-failed "${params[@]}" >/dev/null; fi
}

# point_nginx SLOT: nginx proxies to /run/fdeploy-<app>/live.sock, a symlink to the live slot's
# socket. Switching is one atomic rename: no nginx reload, so no client connection is closed.
# A tmpfiles.d entry re-creates the link at boot (/run is a tmpfs).
point_nginx() {
  local dir=/run/fdeploy-$P_APP
  printf '# Managed by flask-deploy (activate.sh): the live slot of %s\nd %s 0755 root root -\nL+ %s - - - - %s\n' \
    "$P_APP" "$dir" "$(live_socket_path "$P_APP")" "$(socket_path "$P_APP" "$1")" |
    write_if_changed "/etc/tmpfiles.d/fdeploy-$P_APP.conf" 0644 || true
  install -d -m 0755 "$dir"
  atomic_symlink "$(socket_path "$P_APP" "$1")" "$(live_socket_path "$P_APP")"
}

live_slot() { # the slot nginx proxies to now ("" before the first activation)
  cat "$slots/live" 2>/dev/null || { [ -L "$slots/main" ] && echo main; } || true
}

live_slot_is_container() { # the live slot runs the docker runtime: its socket path is a link to the container's
  local live; live=$(live_slot)
  [ -n "$live" ] && [ -L "$(socket_path "$P_APP" "$live")" ]
}

start_slot() { # start_slot SLOT: (re)start the slot's service on its socket, enabled at boot
  if [ "$runtime" = docker ]; then
    # the container binds its own socket (service.sh); a socket unit of the python runtime goes
    systemctl disable --now --quiet "fdeploy-$P_APP@$1.socket" 2>/dev/null || true
    systemctl enable --quiet "fdeploy-$P_APP@$1.service"
    # a start that fails before the container runs (the agent refusing a mount source: mounts.py)
    # is the slot's check's to report, with the journal's why, like any container that exits
    systemctl restart "fdeploy-$P_APP@$1.service" || true
    return 0
  else
    # a slot the docker runtime ran leaves its socket path as a symlink: the socket unit binds there
    [ -L "$(socket_path "$P_APP" "$1")" ] && rm -f "$(socket_path "$P_APP" "$1")"
    local units=("fdeploy-$P_APP@$1.socket" "fdeploy-$P_APP@$1.service")
    # `systemctl enable` reloads systemd even when both are enabled already (0.3-0.4 s); asking is 0.03 s
    [ "$(systemctl is-enabled "${units[@]}" 2>/dev/null | sort -u)" = enabled ] || systemctl enable --quiet "${units[@]}"
  fi
  systemctl restart "fdeploy-$P_APP@$1.service"
}

stop_slot() {
  systemctl disable --now --quiet "fdeploy-$P_APP@$1.service" "fdeploy-$P_APP@$1.socket" 2>/dev/null || true
}

go_live() { # go_live SLOT: nginx -> SLOT, remembered in slots/live
  point_nginx "$1"
  echo "$1" | write_if_changed "$slots/live" 0644 || true
}

# preflight [light]: the agent loads the release's app as its slot would (app user, sandbox,
# environment in force, the unit's Gunicorn options) and GETs the health path once
# (fdeploy_agent/preflight.py); skipped when the deploy's own preflight, before the migrations,
# passed with the same release and settings. `light` (a new slot beside a live one) fails only on
# what the slot's check cannot catch fast. No APP_MODULE (activation settings saved by an older
# version, which state.sh repairs with) or runtime docker (the image's venv is not on the host):
# none; the slot's check decides.
preflight() {
  [ -n "${P_APP_MODULE:-}" ] || return 0
  [ "$runtime" = docker ] && return 0
  local started=$SECONDS
  if ! agent "preflight-switch${1:+-$1}" <<<"$P_RAW" >/dev/null; then
    record failed
    log "preflight: release $P_RELEASE_ID failed after $((SECONDS - started))s"
    exit 1
  fi
}

# restart: the live slot restarts on the new code. Connections wait in the socket's backlog while
# Gunicorn restarts; code that does not load is caught by the preflight before the live slot
# restarts, a failing health check after the restart restores the previous release.
# last_healthy: the newest release the history marks live (other than this one) that is still
# installed; a release that failed is never a fallback
last_healthy() { agent history --field lastHealthy <<<"$P_RAW"; }

activate_restart() {
  local slot previous=""
  slot=$(live_slot); slot=${slot:-main}
  if [ -L "$slots/$slot" ]; then
    previous=$(readlink -f "$slots/$slot")
    # a new release falls back to the last healthy one (not to whatever the slot ran last)
    [ "$previous" = "$release" ] || previous=$(last_healthy)
    [ -n "$previous" ] || previous=$(readlink -f "$slots/$slot")
  fi
  # prove the new code (or the new .env) loads before (re)starting the slot; also on a first deploy
  if [ "${PROBE_PASSED:-}" != 1 ]; then preflight; fi
  point_slot "$slot" "$release"
  start_slot "$slot"
  if ! check_slot "$slot"; then
    record failed
    settings_from live   # the previous release runs with the settings it ran with
    if [ -n "$previous" ]; then
      log "switching back to the previous release $(basename "$previous") and its settings"
      point_slot "$slot" "$previous" "$LIVE_USER"; start_slot "$slot"
      check_slot "$slot" || log "the previous release does not answer either"
    fi
    fail "release $P_RELEASE_ID failed its health check (flask-deploy:healthPath); it is not live"
  fi
  go_live "$slot"
}

# start_checked SLOT WHERE: the release on a slot that takes no traffic yet, started and checked
# there; a failed check stops that slot, marks the release failed and ends the deploy
# ("... failed its health check on WHERE").
start_checked() {
  point_slot "$1" "$release"
  start_slot "$1"
  if ! check_slot "$1"; then
    stop_slot "$1"; record failed
    fail "release $P_RELEASE_ID failed its health check on $2 (flask-deploy:healthPath)"
  fi
}

# rolling: first prove the new release boots and answers on a throw-away probe slot (the live
# one is untouched if it doesn't). The probe then carries the traffic while the live slot
# restarts on the new release as in restart — a fresh process, so the new code and venv are
# really loaded, unlike Gunicorn's HUP — and the traffic returns to the live slot once it passes
# its check. No request waits for a restarting Gunicorn. (Versions before strategy canary called
# the probe slot `canary`: retire_legacy_probe removes what they left.)
activate_rolling() {
  local slot
  slot=$(live_slot)
  if [ -n "$slot" ]; then preflight light; else preflight; fi
  slot=${slot:-main}
  start_checked probe "the probe slot; the live release is untouched"
  if systemctl is-active --quiet "fdeploy-$P_APP@$slot.service"; then
    point_nginx probe
    sleep "${FDEPLOY_DRAIN_SECONDS:-1}"   # requests already connected to the live slot get going
  fi
  local rc=0
  # a subshell so a failure can still send traffic back; not in an `if`, which would disable set -e
  set +e; (set -e; PROBE_PASSED=1 activate_restart); rc=$?; set -e
  if [ $rc != 0 ]; then
    point_nginx "$slot"; stop_slot probe   # activate_restart put the previous release back on $slot
    exit $rc
  fi
  sleep "${FDEPLOY_DRAIN_SECONDS:-1}"     # requests on the probe finish before it stops
  stop_slot probe
}

# retire_legacy_probe: a server deployed by a version whose rolling strategy named its probe slot
# `canary` may keep that slot (its link, .env, a unit left enabled by an interrupted deploy). Once
# nginx no longer proxies to it, it goes.
retire_legacy_probe() {
  [ -e "$slots/canary" ] || [ -L "$slots/canary" ] || [ -f "$slots/canary.env" ] ||
    systemctl is-enabled --quiet "fdeploy-$P_APP@canary.socket" 2>/dev/null || return 0
  [ "$(readlink "$(live_socket_path "$P_APP")" 2>/dev/null)" != "$(socket_path "$P_APP" canary)" ] || return 0
  stop_slot canary
  rm -f "$slots/canary" "$slots/canary.env"
  log "removed the slot 'canary' left by an older version's rolling strategy"
}

# blue-green: start the release on the idle slot, check it there, switch nginx to it (an atomic
# symlink swap, see point_nginx), then drain and stop the old slot. A failed check stops the idle slot and
# leaves the live one untouched.
activate_blue_green() {
  local live idle
  live=$(live_slot)
  if [ -n "$live" ]; then preflight light; else preflight; fi
  if [ "$live" = blue ]; then idle=green; else idle=blue; fi
  start_checked "$idle" "slot $idle; slot ${live:-none} keeps serving"
  go_live "$idle"
  if [ -n "$live" ] && [ "$live" != "$idle" ]; then
    sleep "${FDEPLOY_DRAIN_SECONDS:-1}"   # requests already connected to the old slot get going
    stop_slot "$live"                     # SIGTERM: Gunicorn finishes in-flight requests first
  fi
}

# canary: start the release on the idle slot (as blue-green) and check it there, then shift the
# traffic to it in steps (CANARY_STEPS, percent): nginx's upstream for the app becomes the live and
# the new slot with those weights (upstream.conf, `nginx -t`, a graceful reload). Each step runs
# CANARY_STEP_SECONDS and is gated on what nginx logged for it (the agent's canary-gate): the new
# release's 5xx share and p95 upstream time; with fewer than CANARY_MIN_REQUESTS requests on it the step waits
# (up to CANARY_MAX_WAIT_SECONDS more), fails or passes (CANARY_LOW_TRAFFIC). A tripped gate sends
# all traffic back to the live slot at once, stops the new slot and fails the deploy with the
# numbers; nothing touches the database. After the 100 % step the live link switches to the new
# slot, the upstream goes back to it, and the old slot is drained and stopped, as in blue-green.
# It falls back to blue-green (and says why: the agent's canary-plan) when there is nothing to
# compare with or to split, a rollback, or a migration not marked `-- fdeploy: canary-safe`.
canary_state() { echo "$slots/canary.json"; }

# put_upstream TEXT: the app's upstream servers, tested with nginx -t, then a graceful reload
put_upstream() {
  local f out; f=$(upstream_conf "$P_APP")
  printf '%s\n' "$1" | write_if_changed "$f" 0644 || return 0
  if ! out=$(nginx -t 2>&1); then
    printf '%s\n' "$out" >&2
    default_upstream "$P_APP" | write_if_changed "$f" 0644 || true
    nginx -t -q 2>/dev/null && systemctl reload nginx
    return 1
  fi
  systemctl reload nginx
}
unsplit() { put_upstream "$(default_upstream "$P_APP")"; }   # every request to the live link again

# an interrupted canary (the deploy was killed mid-way): traffic back to the live slot, its new
# slot stopped. Every activation starts with this, whatever its strategy.
recover_canary() {
  local f new; f=$(canary_state)
  if [ -f "$(upstream_conf "$P_APP")" ] && ! default_upstream "$P_APP" | cmp -s - "$(upstream_conf "$P_APP")"; then
    log "an interrupted canary left traffic split: all of it back to the live slot"
    unsplit || true
  fi
  [ -f "$f" ] || return 0
  new=$(agent canary-slot --field slot <<<"$P_RAW")
  if [ -n "$new" ] && [ "$new" != "$(live_slot)" ]; then
    log "an interrupted canary left slot $new running: stopping it"
    stop_slot "$new"
  fi
  rm -f "$f"
}

activate_canary() {
  local live new why
  live=$(live_slot)
  # why this deploy cannot be a canary ("" when it can: then its CANARY_* parameters are checked)
  why=$(agent canary-plan --field fallback <<<"$P_RAW") || exit 1
  if [ -n "$why" ]; then
    log "canary: $why; going live blue-green instead"
    P_STRATEGY=blue-green
    activate_blue_green
    return
  fi
  preflight light
  if [ "$live" = blue ]; then new=green; else new=blue; fi
  start_checked "$new" "slot $new; slot $live keeps serving"
  CANARY_SLOT=$new   # on_exit sends the traffic back if anything below fails
  local old_sock new_sock ulog steps pct i=0 n offset rc summary deadline waited
  old_sock=$(socket_path "$P_APP" "$live"); new_sock=$(socket_path "$P_APP" "$new"); ulog=$(upstream_log "$P_APP")
  IFS=, read -r -a steps <<<"$P_CANARY_STEPS"
  n=${#steps[@]}
  log "canary: release $P_RELEASE_ID on slot $new, release $(basename "$(readlink -f "$slots/$live")") on slot $live; steps ${P_CANARY_STEPS//,/ → } %, ${P_CANARY_STEP_SECONDS}s each; gates: 5xx share ≤ $P_CANARY_MAX_ERROR_RATE, p95 ≤ ${P_CANARY_MAX_P95_MS} ms, ≥ $P_CANARY_MIN_REQUESTS requests (else $P_CANARY_LOW_TRAFFIC)"
  for pct in "${steps[@]}"; do
    i=$((i + 1))
    if [ "$pct" -ge 100 ]; then
      put_upstream "server unix:$new_sock;" || canary_abort "nginx rejected the split (nginx -t above)" ""
    else
      put_upstream "$(printf 'server unix:%s weight=%d;\nserver unix:%s weight=%d;' "$old_sock" $((100 - pct)) "$new_sock" "$pct")" ||
        canary_abort "nginx rejected the split (nginx -t above)" ""
    fi
    offset=$(stat -c %s "$ulog" 2>/dev/null || echo 0)
    printf '{"release": "%s", "slot": "%s", "from": "%s", "step": %d, "steps": %d, "percent": %d, "since": "%s", "pid": %d}\n' \
      "$P_RELEASE_ID" "$new" "$(basename "$(readlink -f "$slots/$live")")" "$i" "$n" "$pct" "$(date -u +%FT%TZ)" "$$" |
      write_if_changed "$(canary_state)" 0644 || true
    log "canary step $i/$n: $pct % of requests to the new release for ${P_CANARY_STEP_SECONDS}s"
    deadline=$((SECONDS + P_CANARY_STEP_SECONDS)); waited=$((SECONDS + P_CANARY_STEP_SECONDS + P_CANARY_MAX_WAIT_SECONDS))
    while :; do
      sleep 1
      rc=0; summary=$(canary_gate "$offset" early) || rc=$?
      [ $rc != 5 ] || canary_abort "the new release's process died at step $i/$n ($pct %): $summary" ""
      [ $rc = 0 ] || canary_abort "step $i/$n ($pct %)" "$summary" $rc
      [ $SECONDS -ge $deadline ] || continue
      rc=0; summary=$(canary_gate "$offset" final) || rc=$?
      [ $rc = 2 ] || break
      case $P_CANARY_LOW_TRAFFIC in
        pass) log "canary step $i/$n: fewer than $P_CANARY_MIN_REQUESTS requests on the new release; passing (canary.lowTraffic pass)"; rc=0; break ;;
        fail) canary_abort "step $i/$n ($pct %): fewer than $P_CANARY_MIN_REQUESTS requests on the new release (canary.lowTraffic fail)" "$summary" ;;
      esac
      [ $SECONDS -lt $waited ] || canary_abort "step $i/$n ($pct %): fewer than $P_CANARY_MIN_REQUESTS requests on the new release after waiting ${P_CANARY_MAX_WAIT_SECONDS}s more (canary.maxWaitSeconds)" "$summary"
    done
    [ $rc = 0 ] || canary_abort "step $i/$n ($pct %)" "$summary" $rc
    log "canary step $i/$n ($pct %) passed: $summary"
  done
  go_live "$new"        # the live link -> the new slot, then the upstream back to the live link
  unsplit || log "warning: nginx did not take the plain upstream back; the new slot serves through it meanwhile"
  CANARY_SLOT=
  rm -f "$(canary_state)"
  sleep "${FDEPLOY_DRAIN_SECONDS:-1}"   # requests already connected to the old slot get going
  stop_slot "$live"                     # SIGTERM: Gunicorn finishes in-flight requests first
}

# canary_gate OFFSET MODE: the step's numbers so far (one line); exit status the gate's verdict
# (the agent's canary-gate: 0 pass, 2 too few requests, 3 5xx share, 4 p95, 5 (early) the new
# slot's process died, the line then says why; every value checked)
canary_gate() {
  local out
  out=$(agent canary-gate --app "$P_APP" --set SLOT="$CANARY_SLOT" --set OFFSET="$1" --set MODE="$2" \
    --set CANARY_MAX_ERROR_RATE="$P_CANARY_MAX_ERROR_RATE" --set CANARY_MAX_P95_MS="$P_CANARY_MAX_P95_MS" \
    --set CANARY_MIN_REQUESTS="$P_CANARY_MIN_REQUESTS" --field line) || return 1
  printf '%s\n' "${out#* }"
  return "${out%% *}"
}

# canary_abort WHAT SUMMARY [GATE]: all traffic back to the live slot at once, the new slot stopped,
# the deploy failed with the numbers
canary_abort() {
  local what=$1 summary=$2 gate=${3:-} reason
  case $gate in
    3) reason="the new release's 5xx share is over canary.maxErrorRate ($P_CANARY_MAX_ERROR_RATE)" ;;
    4) reason="the new release's p95 is over canary.maxP95Ms (${P_CANARY_MAX_P95_MS} ms)" ;;
    "") reason="" ;;
    *) reason="the gate check failed (exit $gate)" ;;
  esac
  canary_back
  record failed
  fail "canary aborted at $what${reason:+: $reason}${summary:+ [$summary]}; all traffic is back on release $(basename "$(readlink -f "$slots/$(live_slot)")") (slot $(live_slot)), the new slot is stopped, the database was not touched by the abort"
}

canary_back() { # the traffic back to the live slot, the new slot stopped (abort, or any failure)
  [ -n "${CANARY_SLOT:-}" ] || return 0
  unsplit || log "warning: nginx did not take the plain upstream back (nginx -t above)"
  sleep "${FDEPLOY_DRAIN_SECONDS:-1}"   # requests already on the new slot finish
  stop_slot "$CANARY_SLOT"
  rm -f "$(canary_state)"
  CANARY_SLOT=
}

on_exit() {
  local rc=$?
  if [ $rc != 0 ]; then canary_back || true; settings_from live; fi
  deploy_lock_released
  exit $rc
}

settings_from desired
trap on_exit EXIT
recover_canary
# the user the new release's slot runs as: not the live slot's (the agent's new-release-user, which
# also ends what that user left running and makes shared/ group-writable for it)
mapfile -t users < <(agent new-release-user --field users <<<"$P_RAW")
NEW_USER=${users[0]:-}; LIVE_USER=${users[1]:-$APP_USER}
[ -n "$NEW_USER" ] || fail "could not choose the user of the new release's slot (see above); pulumi up tries again"

case $P_STRATEGY in
  # runtime docker: no socket unit can hold the live slot's connections while its container is
  # replaced (a gap of failed requests), so a restart goes through a probe container first, as
  # rolling does: the same single live slot afterwards, and broken code never touches it. The
  # same when the live slot is a container and the new release is not (docker -> python): its
  # socket path is the container's link until the socket unit binds there.
  restart) if [ "$runtime" = docker ] || live_slot_is_container; then activate_rolling; else activate_restart; fi ;;
  rolling) activate_rolling ;;
  blue-green) activate_blue_green ;;
  canary) activate_canary ;;
  *) fail "unknown strategy '$P_STRATEGY' (expected restart, rolling, blue-green or canary)" ;;
esac
retire_legacy_probe
atomic_symlink "$release" "$APP_ROOT/current"
result=$(record live)
keep_live_settings
agent went-live <<<"$P_RAW" >/dev/null   # state.json, and the bundle fdeploy runs (live-scripts)
# the parameters of the activation that went live: what state.sh repairs to
printf '%s' "$P_RAW" | write_if_changed "$slots/activation.live.json" 0600 || true
rm -f "$slots/activation.json"   # written by older versions
# old releases (slot targets and the newest KEEP_RELEASES that went live kept), their images and
# venvs, and this user's uploads unused for an hour (the agent's prune)
agent prune <<<"$P_RAW" >/dev/null || log "warning: pruning old releases failed (see above); the next deploy tries again"
# the environment file used to live in the app-writable shared/ (the app could swap it for a
# symlink that systemd, reading as root, followed); the units now read /etc/fdeploy/<app>/env, so
# whatever is left there goes (unlink never follows a symlink)
rm -f "$APP_ROOT/shared/.env"
log "live release: $P_RELEASE_ID ($P_STRATEGY), activated $(date -u +%FT%TZ)"
printf '%s\n' "$result"
