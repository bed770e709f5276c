#!/usr/bin/env bash
# base.sh create|delete — the base system for one app: OS packages, an unprivileged app user, two
# slot users (the releases run as them, alternately: the agent's slotuser.py; primary group the app
# user's, which shares shared/), an unprivileged build user (pip runs as it, release.sh) and the
# directory layout:
#   APP_ROOT/                 0750 root:<app>; nginx and the build user may only pass through (ACL)
#   APP_ROOT/releases/<id>/   one folder per release: code owned by root, .venv a link to venvs/;
#   APP_ROOT/venvs/<hash>/    one venv per requirements, built and owned by the build user;
#                             read-only to the app
#   APP_ROOT/shared/          the app's writable data: db/, backups/
#   APP_ROOT/current          symlink to the live release
#   /etc/fdeploy/<app>/env    the app's environment (root, 0600; staged by the agent's env-stage, put in force by activate.sh)
# create params: APP, APP_ROOT, APP_USER, PACKAGES (space-separated)
# delete: removes the app's code and uploads, never its data; purge (params: APP) deletes the data.
. "$(dirname "$0")/lib.sh"

# The accounts base.sh creates carry a mark (their comment field); which to create, which to adopt
# (an earlier version's, unmarked) and which name belongs to someone else: the agent's base-plan.
slot_mark() { echo "flask-deploy slot $1"; }
slot_users() { agent slot-users --set APP_USER="$1" --field users </dev/null; }

create() {
  load_params
  # every setting and account first: a name taken by someone else changes nothing on the server
  local plan packages=() name home group mark
  plan=$(agent base-plan <<<"$P_RAW") || exit 1
  mapfile -t packages < <(result_field missing <<<"$plan")
  if [ ${#packages[@]} -gt 0 ] && [ -n "${packages[0]}" ]; then
    log "installing ${packages[*]}"
    apt_install "${packages[@]}"
  fi
  # (in order: the app user first, the slot users' primary group)
  while IFS=: read -r name home group mark; do
    [ -n "$name" ] || continue
    useradd --system --home-dir "$home" --no-create-home --shell /usr/sbin/nologin --comment "$mark" \
      ${group:+--gid "$group" --no-user-group} "$name"
  done < <(result_field create <<<"$plan")
  while IFS=: read -r name home group mark; do
    if [ -n "$name" ]; then usermod --comment "$mark" "$name"; fi
  done < <(result_field adopt <<<"$plan")
  # APP_ROOT holds the app's code, migrations and history: readable by the app's group only (0750
  # root:<app>); nginx (the static folders) and the build user (venvs/) may only pass through it
  # (ACL x). A server of the earlier layout (0755) gets the ACL before it loses its other bits, so
  # nginx never misses a static file on the way.
  [ ! -L "$P_APP_ROOT" ] || fail "the app folder $P_APP_ROOT is a symlink; refusing to use it (remove the link, then pulumi up)"
  [ -d "$P_APP_ROOT" ] || install -d -m 0750 -o root -g root "$P_APP_ROOT"
  setfacl -m "u:www-data:x,u:$(build_user "$P_APP"):x" "$P_APP_ROOT"
  chown root:"$P_APP_USER" "$P_APP_ROOT" && chmod 0750 "$P_APP_ROOT"
  install -d -m 0755 -o root -g root "$P_APP_ROOT/releases" /etc/fdeploy
  root_dir "$(env_dir "$P_APP")" 0700
  # shared/ sits in the root-owned APP_ROOT, so it cannot be a planted symlink; what is inside it
  # is the app's, so its subfolders are made by the app user itself (root follows no path there)
  [ -L "$P_APP_ROOT/shared" ] && fail "$P_APP_ROOT/shared is a symlink; refusing to use it"
  # (group-writable: the slot users share it through the app user's group)
  install -d -m 0770 -o "$P_APP_USER" -g "$P_APP_USER" "$P_APP_ROOT/shared"
  run_as_app "$P_APP_USER" install -d -m 0770 "$P_APP_ROOT/shared/db" "$P_APP_ROOT/shared/backups" ||
    fail "could not create shared/db and shared/backups as $P_APP_USER"
  # uploads in the SSH user's home: readable by that user only
  chmod 0700 "$(dirname "$FDEPLOY_HOME")" "$FDEPLOY_HOME"
  # APP_ROOT, APP_USER and STACK (the stack that deploys the app here, for messages; kept when a
  # caller does not say), which load_settings sources
  agent base-settings >/dev/null <<<"$P_RAW"
  echo "base ready: $P_APP_ROOT (user $P_APP_USER)"
}

# delete (pulumi destroy): the app's code, units' leftovers and uploads go; its data never does —
# shared/ (database, backups), the environment file, the app user and its slot users (owners of
# files there) stay, whatever any setting
# says (a value changed after the last deploy must not delete a database). purge deletes them.
delete() {
  local app=$1
  check_app_name "$app"
  load_settings "$app" || { echo "nothing to remove for $app"; return; }
  rm -rf "$APP_ROOT/releases" "$APP_ROOT/venvs" "$APP_ROOT/current" "$APP_ROOT/migrations" "$APP_ROOT/slots" "$APP_ROOT/tools" "$FDEPLOY_HOME/uploads" "$FDEPLOY_HOME"/migrations-*
  userdel "$(build_user "$app")" 2>/dev/null || true
  # runtime docker: the release images (the data is in shared/, mounted, never in an image)
  if command -v docker >/dev/null; then
    docker image ls -q "fdeploy-$app" 2>/dev/null | sort -u | xargs -r docker image rm -f >/dev/null 2>&1 || true
  fi
  echo "kept the data of $app: $APP_ROOT/shared (database, backups), $APP_ROOT/files (rendered shared files, if any) and $(env_file "$app"); delete them with: npm run purge -- --stack ${STACK:-<stack>} --confirm $app"
}

# purge (npm run purge, after pulumi destroy): delete what destroy keeps — the database, backups,
# environment file, the app user and the uploads. Refused while the app is still deployed.
purge() {
  load_params
  load_settings "$P_APP" || { echo "nothing to purge for $P_APP"; return; }
  [ -e "/etc/systemd/system/$(service_unit "$P_APP")" ] &&
    fail "app '$P_APP' is still deployed on this server; run pulumi destroy first"
  # everything of the app this project created: its data and settings, its nginx logs, the backup's
  # server id and pinned key, and the uploads in the SSH user's home (this bundle among them: bash
  # has the script open, so the rest of it still runs)
  local logs=(/var/log/nginx/fdeploy-"$P_APP".*) backup=(/etc/fdeploy/"$P_APP".backup-*) uploads=""
  [[ $FDEPLOY_HOME == */.fdeploy/"$P_APP" ]] && uploads=$FDEPLOY_HOME   # only the app's own upload folder
  # (the slot users' names first: the agent is part of this bundle, which the rm below deletes)
  local u slot_users; slot_users=$(slot_users "$APP_USER" | tr '\n' ' ')
  rm -rf "$APP_ROOT" "$(env_dir "$P_APP")" "${logs[@]}" "${backup[@]}" ${uploads:+"$uploads"}
  for u in $slot_users; do
    [ "$(getent passwd "$u" | cut -d: -f5)" = "$(slot_mark "$P_APP")" ] && userdel "$u" 2>/dev/null || true
  done
  userdel "$APP_USER" 2>/dev/null || true
  userdel "$(build_user "$P_APP")" 2>/dev/null || true
  rm -f "$(settings_file "$P_APP")"
  echo "purged $P_APP: $APP_ROOT (database, backups), $(env_dir "$P_APP") (the environment file and its copies), $(settings_file "$P_APP"), the nginx logs /var/log/nginx/fdeploy-$P_APP.*, the backup's server id, the uploads in $FDEPLOY_HOME and the users $APP_USER, ${slot_users}and $(build_user "$P_APP") are gone"
}

case ${1:-} in create) create ;; delete) delete "${2:-}" ;; purge) purge ;; *) fail "usage: base.sh create|delete APP|purge" ;; esac
