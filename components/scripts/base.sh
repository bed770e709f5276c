#!/usr/bin/env bash
# base.sh create|delete — the base system for one app: OS packages, an unprivileged app user and
# the directory layout:
#   APP_ROOT/releases/<id>/   one folder per release (code + .venv), owned by root, read-only to the app
#   APP_ROOT/shared/          the app's writable data: db/, backups/, .env (0600)
#   APP_ROOT/current          symlink to the live release
# create params: APP, APP_ROOT, APP_USER, KEEP_DATA, PACKAGES (space-separated)
# delete: removes the app's settings and, unless KEEP_DATA is true, shared/ with the database.
. "$(dirname "$0")/lib.sh"

create() {
  load_params
  [[ $P_APP_ROOT =~ ^/[A-Za-z0-9._/-]+$ && $P_APP_ROOT != *..* ]] || fail "bad app root '$P_APP_ROOT'"
  [[ $P_APP_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "bad app user '$P_APP_USER'"
  local missing=() p
  for p in $P_PACKAGES; do
    [[ $p =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || fail "bad package name '$p'"
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  id -u "$P_APP_USER" >/dev/null 2>&1 ||
    useradd --system --home-dir "$P_APP_ROOT" --no-create-home --shell /usr/sbin/nologin "$P_APP_USER"
  install -d -m 0755 -o root -g root "$P_APP_ROOT" "$P_APP_ROOT/releases" /etc/fdeploy
  install -d -m 0750 -o "$P_APP_USER" -g "$P_APP_USER" "$P_APP_ROOT/shared"
  install -d -m 0700 -o "$P_APP_USER" -g "$P_APP_USER" "$P_APP_ROOT/shared/db" "$P_APP_ROOT/shared/backups"
  printf 'APP_ROOT=%q\nAPP_USER=%q\nKEEP_DATA=%q\n' "$P_APP_ROOT" "$P_APP_USER" "$P_KEEP_DATA" |
    write_if_changed "$(settings_file "$P_APP")" 0644 || true
  echo "base ready: $P_APP_ROOT (user $P_APP_USER)"
}

delete() {
  local app=$1
  check_app_name "$app"
  load_settings "$app" || { echo "nothing to remove for $app"; return; }
  rm -rf "$APP_ROOT/releases" "$APP_ROOT/current" "$APP_ROOT/migrations" "$APP_ROOT/slots" "$HOME/.fdeploy/$app/uploads"
  if [ "$KEEP_DATA" = true ]; then
    echo "kept $APP_ROOT/shared (database, backups, .env): keepDataOnDestroy is true"
  else
    rm -rf "$APP_ROOT"
    userdel "$APP_USER" 2>/dev/null || true
    echo "removed $APP_ROOT including the database"
  fi
  rm -f "$(settings_file "$app")"
}

case ${1:-} in create) create ;; delete) delete "${2:-}" ;; *) fail "usage: base.sh create|delete APP" ;; esac
