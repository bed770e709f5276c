#!/usr/bin/env bash
# backup.sh create|delete|restore|verify|status — continuous offsite backups of the app's SQLite
# databases with Litestream (issue #14; components/backup.ts):
#   /usr/local/lib/fdeploy/litestream-<version>/litestream   the binary (sha256-checked: uploaded or
#                                                            the official release, downloaded here)
#   /etc/fdeploy/<app>.litestream.yml      its config (0644, no secret in it)
#   /etc/fdeploy/<app>/backup-sftp-key     the SFTP key, or backup.env with the S3 keys (root, 0600):
#                                          systemd hands them to the units (LoadCredential=,
#                                          EnvironmentFile=), which run as the app user
#   fdeploy-<app>-backup.service           `litestream replicate`, restarted until the target answers
#   fdeploy-<app>-restore.service          oneshot: `litestream restore` of every database that does
#                                          not exist yet (a brand-new server), if the replica has it
# create (deploy): install, configure; on a server without the database restore it first (a target
# that cannot be reached then fails the deploy: it cannot tell whether there is data to restore);
# then start replicating. With the database in place, a target that is down only warns.
# The decisions (every setting checked, the lease, the files and units, what a failed restore
# means) are the agent's (fdeploy_agent/backup.py, backup_lease.py): backup-claim, backup-start,
# backup-settings; this script is the glue around them (installs, systemctl, sqlite3, litestream).
# create params: APP, VERSION, UPLOAD or URL, SHA256, KIND (sftp|s3), CONFIG, DATABASES, CREDENTIALS,
#   VERIFY_EVERY ("" or 24h), R_PATH and R_HOST, R_PORT, R_USER, R_HOSTKEY (sftp) or R_BUCKET, ENDPOINT, REGION (s3),
#   HOST (server.host: recorded in the lease), TAKEOVER ("" or backup.takeover: the id of the server to take over from)
# delete APP (pulumi destroy): stops and removes the units and config; the replica and data stay.
# restore (params: APP, [TIMESTAMP]): app stopped, each database restored from the replica to a new
#   file, the old one kept aside as <db>.before-restore-<time>, then app and replication start again.
# verify (params: APP): the latest replica restored to a temporary file, PRAGMA integrity_check,
#   row counts compared with the live database.
# status (params: APP): replication running, the lease, each database's lag, the last drill.
. "$(dirname "$0")/lib.sh"

lsdir() { echo "/usr/local/lib/fdeploy/litestream-$1"; }
ls_config() { echo "/etc/fdeploy/$1.litestream.yml"; }
backup_unit() { echo "fdeploy-$1-backup.service"; }
restore_unit() { echo "fdeploy-$1-restore.service"; }
run_conf() { echo "/etc/fdeploy/$1.backup.conf"; }
verify_unit() { echo "fdeploy-$1-backup-verify"; }   # .service + .timer (backup.verifyEvery)
RUN=/usr/local/lib/fdeploy/backup-run.sh

# install_litestream: one path for both sources — a file, its pinned sha256, installed once per version
install_litestream() {
  local dir; dir=$(lsdir "$P_VERSION")
  if [ -x "$dir/litestream" ] && [ "$(cat "$dir/litestream.src" 2>/dev/null)" = "$P_SHA256" ]; then
    return 0
  fi
  local tmp; tmp=$(mktemp -d)
  if [ -n "${P_UPLOAD:-}" ]; then
    cp "$FDEPLOY_HOME/$P_UPLOAD/litestream" "$tmp/file"
  else
    curl -fsSL --max-time 120 -o "$tmp/file" "$P_URL" || fail "could not download $P_URL; set flask-deploy:backup.litestream to auto or upload"
  fi
  echo "$P_SHA256  $tmp/file" | sha256sum -c --quiet - >/dev/null 2>&1 ||
    fail "Litestream from ${P_UPLOAD:-$P_URL} does not match the pinned sha256 $P_SHA256; refusing to install it (flask-deploy:backup.litestream)"
  if [ -n "${P_UPLOAD:-}" ]; then
    mv "$tmp/file" "$tmp/litestream"
  else
    tar -xzf "$tmp/file" -C "$tmp" litestream || fail "the Litestream release archive has no litestream binary; set flask-deploy:backup.litestream to auto or upload"
  fi
  install -d -m 0755 /usr/local/lib/fdeploy "$dir"
  install -m 0755 "$tmp/litestream" "$dir/litestream.new" && mv -f "$dir/litestream.new" "$dir/litestream"
  printf '%s' "$P_SHA256" >"$dir/litestream.src"
  rm -rf "$tmp"
  log "litestream $P_VERSION installed in $dir"
}

# the agent for the backup units and runs: they run as the app user, who cannot read this bundle
# (ProtectHome=): a copy per content, /usr/local/lib/fdeploy/backup-agent swapped to it in one rename
BACKUP_AGENT=/usr/local/lib/fdeploy/backup-agent
install_agent() {
  local h dir
  h=$(cd "$AGENT" && find . -type f \( -name '*.py' -o -name '*.conf' \) -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  dir=/usr/local/lib/fdeploy/agent-$h
  install -d -m 0755 /usr/local/lib/fdeploy
  if [ ! -d "$dir" ]; then
    rm -rf "$dir.tmp"
    cp -R "$AGENT" "$dir.tmp" && chown -R root:root "$dir.tmp" && chmod -R u=rwX,go=rX "$dir.tmp" && mv -T "$dir.tmp" "$dir"
  fi
  [ "$(readlink "$BACKUP_AGENT" 2>/dev/null)" = "$dir" ] || atomic_symlink "$dir" "$BACKUP_AGENT"
  find /usr/local/lib/fdeploy -maxdepth 1 -name 'agent-*' ! -name "agent-$h" -exec rm -rf {} +
}

create() {
  load_params
  load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
  with_deploy_lock
  # first: every setting checked and the lease decided; another server's replica stops the deploy
  # before anything here changes (the agent names both servers and backup.takeover)
  local out SAY CHANGED DB_MISSING changed=0
  out=$(agent backup-claim --field shell <<<"$P_RAW") || exit 1
  eval "$out"
  [ -z "$SAY" ] || printf '%s\n' "$SAY"
  install_litestream
  install_agent
  install -d -m 0755 /usr/local/lib/fdeploy
  cmp -s "$(dirname "$0")/backup-run.sh" "$RUN" || { install -m 0755 "$(dirname "$0")/backup-run.sh" "$RUN"; changed=1; }
  # the files and units written and enabled; a server without its database restored from the replica
  out=$(agent backup-start --field shell <<<"$P_RAW") || exit 1
  eval "$out"
  [ -z "$SAY" ] || printf '%s\n' "$SAY"
  [ -z "$CHANGED" ] || changed=1
  if [ -n "$DB_MISSING" ]; then
    # Litestream replicates a file that exists; migrate.py brings its schema (WAL mode)
    # (as the app user, time-limited: whatever the app put there meanwhile cannot hang the deploy)
    # (group-writable: the slot users share it through the app's group)
    run_as_app "$APP_USER" sh -c 'timeout 60 sqlite3 "$1" "PRAGMA journal_mode=WAL;" >/dev/null && chmod g+rw "$1"' _ "$APP_ROOT/shared/db/app.sqlite3" ||
      fail "could not create the database shared/db/app.sqlite3 as $APP_USER (within 60 s); if something else is at that path, remove it (as $APP_USER) and deploy again"
  fi
  if [ $changed = 1 ] || ! systemctl is-active --quiet "$(backup_unit "$P_APP")"; then
    systemctl restart "$(backup_unit "$P_APP")"
  fi
  sleep 1
  systemctl is-active --quiet "$(backup_unit "$P_APP")" ||
    echo "warning: backup of '$P_APP': Litestream is not running ($(journal_tail "$(backup_unit "$P_APP")" 1 | cut -c1-200)); systemd restarts it"
  echo "backup: litestream $P_VERSION replicating $P_DATABASES"
}

delete() {
  local app=$1
  check_app_name "$app"
  systemctl disable --now --quiet "$(backup_unit "$app")" "$(verify_unit "$app").timer" 2>/dev/null || true
  rm -f "/etc/systemd/system/$(verify_unit "$app").timer" "/etc/systemd/system/$(verify_unit "$app").service"
  rm -f "/etc/systemd/system/$(backup_unit "$app")" "/etc/systemd/system/$(restore_unit "$app")" "$(ls_config "$app")" "$(run_conf "$app")"
  rm -f "$(env_dir "$app")/backup-sftp-key" "$(env_dir "$app")/backup.env"
  systemctl daemon-reload
  echo "backup of $app stopped (the replica and the data stay)"
}

# as_backup_user CMD…: CMD as the app user with the backup units' credentials and sandbox (a transient unit)
as_backup_user() {
  local dir line props=(); dir=$(env_dir "$P_APP")
  props=(-p User="$APP_USER" -p Group="$APP_USER")
  # the sandbox's UMask=0007: what a restore writes in shared/ the slot users (the app's group) can write
  while IFS= read -r line; do props+=(-p "$line"); done < <(hardening "$APP_ROOT")
  [ -f "$dir/backup-sftp-key" ] && props+=(-p LoadCredential="sftp-key:$dir/backup-sftp-key")
  [ -f "$dir/backup.env" ] && props+=(-p EnvironmentFile="$dir/backup.env")
  systemd-run --quiet --wait --pipe --collect "${props[@]}" "$@"
}

backup_settings() { # LITESTREAM CONFIG DBS (the agent's backup-settings)
  load_params
  load_settings "$P_APP" || fail "app '$P_APP' has no base system on this server (pulumi up installs it)"
  local out; out=$(agent backup-settings --field shell <<<"$P_RAW") || exit 1
  eval "$out"
}

# verify: the latest replica of each database restored to a temporary file (as the app user),
# PRAGMA integrity_check, row counts per table next to the live database's
verify() {
  backup_settings
  local db rc=0
  for db in $DBS; do
    echo "== $db"
    as_backup_user "$RUN" verify "$(run_conf "$P_APP")" "$db" || rc=1
  done
  echo "replication: $(systemctl is-active "$(backup_unit "$P_APP")" || true)"
  [ $rc = 0 ] && echo "verify: ok" || fail "fdeploy backup verify: FAILED (the lines above say why)"
}

# restore [TIMESTAMP]: the app and replication stopped, each database restored from the replica to a
# new file, the old one kept aside (<db>.before-restore-<time>), then both started again
restore() {
  backup_settings   # TIMESTAMP checked there
  with_deploy_lock
  local db stamp slots; stamp=$(date -u +%Y%m%dT%H%M%SZ)
  slots=$(systemctl list-units --plain --no-legend --state=active "fdeploy-$P_APP@*.service" 2>/dev/null | awk '{print $1}')
  for db in $DBS; do
    as_backup_user "$LITESTREAM" restore -config "$CONFIG" ${P_TIMESTAMP:+-timestamp "$P_TIMESTAMP"} -o "$db.restoring" "$db" >&2 ||
      { as_backup_user /bin/rm -f "$db.restoring"; fail "restore of $db failed; nothing was changed"; }
  done
  systemctl stop "$(backup_unit "$P_APP")" $slots
  for db in $DBS; do
    # as the app user: root never follows a path in the app-writable shared/
    run_as_app "$APP_USER" /bin/bash -c 'set -e
      for f in "$1" "$1-wal" "$1-shm"; do [ -e "$f" ] && mv "$f" "${f/$1/$1.before-restore-$2}"; done
      mv "$1.restoring" "$1"; chmod g+rw "$1"   # the slot users share it (the app group)
      rm -rf "$(dirname "$1")/.$(basename "$1")-litestream"' _ "$db" "$stamp"
    echo "restored $db (the previous file: $db.before-restore-$stamp)"
  done
  systemctl start "$(backup_unit "$P_APP")" $slots
  echo "restore: done${P_TIMESTAMP:+ (to $P_TIMESTAMP)}; the app runs again${slots:+: $slots}"
}

# status: replication running, the lease, each database's lag, the last scheduled drill
status() {
  backup_settings
  local v; v=$(verify_unit "$P_APP")
  echo "replication: $(systemctl is-active "$(backup_unit "$P_APP")" || true)"
  # the lease and each database's lag: the agent, as the app user in the backup units' sandbox
  as_backup_user /usr/bin/python3 -I -B "$BACKUP_AGENT" backup-status --field lines <<<"$P_RAW" || true
  if [ -f "/etc/systemd/system/$v.timer" ]; then
    local at; at=$(systemctl show -p ExecMainExitTimestamp --value "$v.service")
    if [ -z "$at" ]; then echo "last verify: not yet on this server (the timer: $(systemctl is-active "$v.timer" 2>/dev/null || true))"
    else echo "last verify: $at, $(systemctl show -p Result --value "$v.service")"; fi
  else
    echo "last verify: no schedule (backup.verifyEvery)"
  fi
}

case ${1:-} in
  create) create ;; delete) delete "${2:-}" ;; verify) verify ;; restore) restore ;; status) status ;;
  *) fail "usage: backup.sh create|delete APP|verify|restore|status" ;;
esac
