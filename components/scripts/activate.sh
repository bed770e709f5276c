#!/usr/bin/env bash
# activate.sh create — the switch point of every deploy: make RELEASE_ID the live release with the
# stack's strategy, health-check it, and keep the previous one serving if the check fails.
#   restart:  point slot "main" at the release, restart its service (brief downtime), check it.
#             On failure: point "main" back at the previous release and restart it again.
# Then: APP_ROOT/current -> the release, nginx's upstream -> the live slot's socket, a line in
# APP_ROOT/history.log, and old releases pruned (the live and previous ones are always kept).
# params: APP, RELEASE_ID, STRATEGY, HEALTH_PATH, HEALTH_TIMEOUT, KEEP_RELEASES
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
[ -f "$release/.fdeploy-release.json" ] || fail "release $P_RELEASE_ID is not installed"
install -d -m 0755 "$slots"

# point_slot SLOT RELEASE_DIR: the slot's code and its RELEASE_ID
point_slot() {
  printf 'RELEASE_ID=%s\n' "$(basename "$2")" | write_if_changed "$slots/$1.env" 0644 || true
  atomic_symlink "$2" "$slots/$1"
}

# check_slot SLOT: the app answers its health path on the slot's own socket
check_slot() {
  local result
  if result=$(wait_healthy "$P_HEALTH_TIMEOUT" "http://localhost$P_HEALTH_PATH" --unix-socket "$(socket_path "$P_APP" "$1")"); then
    log "health check of $1 passed: ${result%% *}"
    return 0
  fi
  log "health check of slot $1 ($P_HEALTH_PATH) failed within ${P_HEALTH_TIMEOUT}s: HTTP ${result%% *}; body: ${result#* }"
  log "--- last lines of the journal of fdeploy-$P_APP@$1 ---"
  journal_tail "fdeploy-$P_APP@$1" 30 >&2
  return 1
}

record() { # record STATUS: one line per activation, newest last
  local schema
  schema=$(runuser -u "$APP_USER" -- sqlite3 -readonly "$APP_ROOT/shared/db/app.sqlite3" \
    'SELECT coalesce(max(version), 0) FROM schema_migrations' 2>/dev/null || true)
  printf '%s %s %s strategy=%s schema=%s\n' "$(date -u +%FT%TZ)" "$P_RELEASE_ID" "$1" "$P_STRATEGY" "${schema:-?}" \
    >>"$APP_ROOT/history.log"
}

# set_upstream SLOT: nginx proxies to the slot's socket (the site includes this file)
set_upstream() {
  local up=/etc/nginx/fdeploy/$P_APP.upstream.conf
  printf '# Managed by flask-deploy (activate.sh): the live slot is %s\nupstream fdeploy_%s {\n    server unix:%s;\n}\n' \
    "$1" "${P_APP//-/_}" "$(socket_path "$P_APP" "$1")" | write_if_changed "$up" 0644 || return 0
  if [ -e "/etc/nginx/sites-enabled/fdeploy-$P_APP.conf" ]; then
    nginx -t -q && systemctl reload nginx
  fi
}

prune() { # keep the newest KEEP_RELEASES healthy releases, plus whatever a slot points at
  local keep=() id
  for s in "$slots"/*; do [ -L "$s" ] && keep+=("$(basename "$(readlink -f "$s")")"); done
  mapfile -t healthy < <(awk '$3 == "live" {print $2}' "$APP_ROOT/history.log" | tac | awk '!seen[$0]++' | head -n "$P_KEEP_RELEASES")
  keep+=("${healthy[@]}")
  for d in "$APP_ROOT"/releases/*/; do
    id=$(basename "$d")
    [[ " ${keep[*]} " == *" $id "* ]] && continue
    [ "$(stat -c %Y "$d")" -gt $(( $(date +%s) - 60 )) ] && continue   # being installed right now
    rm -rf "$d" "$FDEPLOY_HOME/uploads/$id"; log "pruned release $id"
  done
}

activate_restart() {
  local previous=""
  [ -L "$slots/main" ] && previous=$(readlink -f "$slots/main")
  point_slot main "$release"
  systemctl enable --quiet "fdeploy-$P_APP@main"
  systemctl restart "fdeploy-$P_APP@main"
  if ! check_slot main; then
    record failed
    if [ -n "$previous" ] && [ "$previous" != "$release" ]; then
      log "switching back to the previous release $(basename "$previous")"
      point_slot main "$previous"; systemctl restart "fdeploy-$P_APP@main"
      check_slot main || log "the previous release does not answer either"
    fi
    fail "release $P_RELEASE_ID failed its health check; it is not live"
  fi
  set_upstream main
}

case $P_STRATEGY in
  restart) activate_restart ;;
  *) fail "unknown strategy '$P_STRATEGY' (expected restart, rolling or blue-green)" ;;
esac
atomic_symlink "$release" "$APP_ROOT/current"
record live
prune
echo "live release: $P_RELEASE_ID ($P_STRATEGY), activated $(date -u +%FT%TZ)"
