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
    [[ $P_UPLOAD =~ ^litestream-[0-9a-f]{12}$ ]] || fail "bad upload '$P_UPLOAD'"
    cp "$FDEPLOY_HOME/$P_UPLOAD/litestream" "$tmp/file"
  else
    [[ $P_URL =~ ^https://[A-Za-z0-9./_-]+$ ]] || fail "bad Litestream URL '$P_URL'"
    curl -fsSL --max-time 120 -o "$tmp/file" "$P_URL" || fail "could not download $P_URL"
  fi
  echo "$P_SHA256  $tmp/file" | sha256sum -c --quiet - >/dev/null 2>&1 ||
    fail "Litestream from ${P_UPLOAD:-$P_URL} does not match the pinned sha256 $P_SHA256; refusing to install it"
  if [ -n "${P_UPLOAD:-}" ]; then
    mv "$tmp/file" "$tmp/litestream"
  else
    tar -xzf "$tmp/file" -C "$tmp" litestream || fail "the release archive has no litestream binary"
  fi
  install -d -m 0755 /usr/local/lib/fdeploy "$dir"
  install -m 0755 "$tmp/litestream" "$dir/litestream.new" && mv -f "$dir/litestream.new" "$dir/litestream"
  printf '%s' "$P_SHA256" >"$dir/litestream.src"
  rm -rf "$tmp"
  log "litestream $P_VERSION installed in $dir"
}

unit_common() { # the identity, credentials and sandbox the backup units run with: the app's one
  # sandbox (hardening) — the network is open, so Litestream reaches the target — and the database
  # files private to the app user, whatever the app's UMask
  local dir; dir=$(env_dir "$P_APP")
  cat <<UNIT
User=$APP_USER
Group=$APP_USER
$([ "$P_KIND" = sftp ] && echo "LoadCredential=sftp-key:$dir/backup-sftp-key")
$([ "$P_KIND" = s3 ] && echo "EnvironmentFile=$dir/backup.env")
$(hardening "$APP_ROOT")
UNIT
}

write_units() {
  local bin changed=1 dbs=() d
  bin=$(lsdir "$P_VERSION")/litestream
  for d in $P_DATABASES; do dbs+=("$APP_ROOT/shared/$d"); done
  {
    cat <<UNIT
# Managed by flask-deploy (components/scripts/backup.sh). Do not edit: the next deploy rewrites it.
[Unit]
Description=Restore $P_APP's databases from the offsite replica where they do not exist yet
After=network-online.target

[Service]
Type=oneshot
$(unit_common)
UNIT
    for d in "${dbs[@]}"; do
      echo "ExecStart=$bin restore -config $(ls_config "$P_APP") -if-db-not-exists -if-replica-exists $d"
    done
  } | write_if_changed "/etc/systemd/system/$(restore_unit "$P_APP")" 0644 || changed=0
  cat <<UNIT | write_if_changed "/etc/systemd/system/$(backup_unit "$P_APP")" 0644 && changed=1
# Managed by flask-deploy (components/scripts/backup.sh). Do not edit: the next deploy rewrites it.
[Unit]
Description=Offsite backup of $P_APP's databases (Litestream)
After=network-online.target $(restore_unit "$P_APP")
StartLimitIntervalSec=0

[Service]
Type=simple
$(unit_common)
ExecStart=$RUN run $(run_conf "$P_APP")
Restart=always
RestartSec=5
# 3: the replica belongs to another server now (backup-run.sh): stay stopped
RestartPreventExitStatus=3
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
UNIT
  return $((1 - changed))
}

# the drill on a schedule (backup.verifyEvery): backup-run.sh verify of every database, in the journal
write_verify_timer() {
  local v; v=$(verify_unit "$P_APP")
  if [ -z "${P_VERIFY_EVERY:-}" ]; then
    systemctl disable --now --quiet "$v.timer" 2>/dev/null || true
    rm -f "/etc/systemd/system/$v.timer" "/etc/systemd/system/$v.service"
    return 0
  fi
  [[ $P_VERIFY_EVERY =~ ^[1-9][0-9]{0,5}(s|m|h)$ ]] || fail "bad verify interval '$P_VERIFY_EVERY'"
  local d
  {
    cat <<UNIT
# Managed by flask-deploy (components/scripts/backup.sh). Do not edit: the next deploy rewrites it.
[Unit]
Description=Restore drill of $P_APP's offsite backup (integrity check, row counts)

[Service]
Type=oneshot
$(unit_common)
UNIT
    for d in $P_DATABASES; do echo "ExecStart=$RUN verify $(run_conf "$P_APP") $APP_ROOT/shared/$d"; done
  } | write_if_changed "/etc/systemd/system/$v.service" 0644 || true
  cat <<UNIT | write_if_changed "/etc/systemd/system/$v.timer" 0644 || true
# Managed by flask-deploy (components/scripts/backup.sh). Do not edit: the next deploy rewrites it.
[Unit]
Description=Restore drill of $P_APP's offsite backup, every $P_VERIFY_EVERY

[Timer]
OnBootSec=$P_VERIFY_EVERY
OnUnitActiveSec=$P_VERIFY_EVERY
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
UNIT
}

# what backup-run.sh needs (no secret): this server's id for the lease (and its host), the target,
# the pinned host key. check_target first; run_conf_text KNOWN_HOSTS prints it.
backup_id() { # this server's id for the lease: random, made once per server and app
  local idf=/etc/fdeploy/$P_APP.backup-id
  [ -s "$idf" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$idf"
  chmod 0644 "$idf"
  cat "$idf"
}
check_target() {
  if [ "$P_KIND" = sftp ]; then
    [[ $P_R_HOST =~ ^[A-Za-z0-9.-]+$ && $P_R_PORT =~ ^[0-9]{1,5}$ && $P_R_USER =~ ^[a-z_][a-z0-9_.-]*$ && $P_R_PATH =~ ^/[A-Za-z0-9._/-]*$ ]] || fail "bad sftp target"
    [[ $P_R_HOSTKEY =~ ^[a-z0-9-]+\ [A-Za-z0-9+/=]+$ ]] || fail "bad target host key"
  else
    [[ $P_R_BUCKET =~ ^[a-z0-9.-]+$ && $P_R_PATH =~ ^[A-Za-z0-9._/-]*$ && ${P_ENDPOINT:-} =~ ^(https?://[A-Za-z0-9.:-]+/?)?$ && ${P_REGION:-} =~ ^[a-z0-9-]*$ ]] || fail "bad s3 target"
  fi
  [[ ${P_HOST:-} =~ ^[A-Za-z0-9.:_-]{0,253}$ ]] || fail "bad server host '${P_HOST:-}'"
  [[ ${P_TAKEOVER:-} =~ ^([0-9a-f]{32})?$ ]] || fail "bad backup.takeover '${P_TAKEOVER:-}' (expected the 32 hex digits of a server id)"
}
known_hosts_text() {
  if [ "$P_R_PORT" = 22 ]; then echo "$P_R_HOST $P_R_HOSTKEY"; else echo "[$P_R_HOST]:$P_R_PORT $P_R_HOSTKEY"; fi
}
run_conf_text() {
  printf 'ME=%q\nHOST=%q\nKIND=%q\nLITESTREAM=%q\nCONFIG=%q\nR_HOST=%q\nR_PORT=%q\nR_USER=%q\nR_PATH=%q\nKNOWN_HOSTS=%q\nR_BUCKET=%q\nENDPOINT=%q\nREGION=%q\n' \
    "$(backup_id)" "${P_HOST:-}" "$P_KIND" "$(lsdir "$P_VERSION")/litestream" "$(ls_config "$P_APP")" "${P_R_HOST:-}" "${P_R_PORT:-}" \
    "${P_R_USER:-}" "$P_R_PATH" "$1" "${P_R_BUCKET:-}" "${P_ENDPOINT:-}" "${P_REGION:-}"
}
write_run_conf() {
  local kh=/etc/fdeploy/$P_APP.backup-known-hosts
  [ "$P_KIND" != sftp ] || known_hosts_text | write_if_changed "$kh" 0644 || true
  run_conf_text "$kh" | write_if_changed "$(run_conf "$P_APP")" 0644
}

# claim_replica: the lease decided first, before anything else on this server changes (issue 24
# item 5): the bundle's backup-run.sh claim, as root, with the credentials in a root-only temporary
# folder (a file and the environment, never a command line). Sets FRESH (no database here: this
# server restores from the replica and takes it over). Another server's replica stops the deploy
# (backup-run.sh names both servers and backup.takeover); a target that cannot be reached stops
# it only on a fresh server (it could not restore), else it warns (the unit's fence decides later).
claim_replica() {
  FRESH=""
  db_missing && FRESH=1
  local tmp rc=0 ak="" sk=""; tmp=$(mktemp -d "$LOCK_DIR/backup-claim.XXXXXX")   # root 0700, in /run: never on disk
  run_conf_text "$tmp/known_hosts" >"$tmp/conf"
  [ "$P_KIND" != sftp ] || known_hosts_text >"$tmp/known_hosts"
  (umask 077; printf '%s' "$P_CREDENTIALS" | python3 -c '
import json, sys
c = json.load(sys.stdin)
if sys.argv[1] == "sftp":
    open(sys.argv[2] + "/sftp-key", "w").write(c["sftpKey"])
else:
    for k in ("accessKeyId", "secretAccessKey"):
        if any(ch in c[k] for ch in "\r\n\0\"\\"):
            sys.exit("bad S3 credential: a quote, backslash or newline")
        print(c[k])
' "$P_KIND" "$tmp" >"$tmp/s3") || { rm -rf "$tmp"; fail "could not read the backup credentials"; }
  { IFS= read -r ak; IFS= read -r sk; } <"$tmp/s3" || true
  rm -f "$tmp/s3"
  CREDENTIALS_DIRECTORY=$tmp FDEPLOY_BACKUP_ACCESS_KEY_ID=$ak FDEPLOY_BACKUP_SECRET_ACCESS_KEY=$sk \
    FRESH=$FRESH TAKEOVER=${P_TAKEOVER:-} bash "$(dirname "$0")/backup-run.sh" claim "$tmp/conf" 2>"$tmp/err" || rc=$?
  local err; err=$(head -c 2000 "$tmp/err"); rm -rf "$tmp"
  case $rc in
    0) ;;
    3) fail "backup of '$P_APP': $err" ;;
    2) if [ -n "$FRESH" ]; then
         fail "could not restore from the replica ($(sed -n 's/^#REPLICA //p' <<<"$P_CONFIG")): $(tail -n 1 <<<"$err" | cut -c1-300); the deploy stops so that a fresh, empty database never replaces the backups. Fix the target and deploy again"
       fi
       echo "warning: backup of '$P_APP': the replica cannot be reached to claim it for this server; replication retries and catches up when the target answers, if the replica is still this server's ($(tail -n 1 <<<"$err" | cut -c1-200))" ;;
    *) fail "backup of '$P_APP': could not claim the replica (exit $rc): $(tail -n 3 <<<"$err")" ;;
  esac
}

db_missing() { [ ! -e "$APP_ROOT/shared/db/app.sqlite3" ]; }

create() {
  load_params
  [[ $P_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "bad Litestream version '$P_VERSION'"
  [[ $P_SHA256 =~ ^[0-9a-f]{64}$ ]] || fail "bad sha256 '$P_SHA256'"
  [[ $P_KIND =~ ^(sftp|s3)$ ]] || fail "bad replica kind '$P_KIND'"
  local d
  for d in $P_DATABASES; do [[ $d =~ ^[A-Za-z0-9._/-]+$ && $d != *..* ]] || fail "bad database path '$d'"; done
  load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
  check_target
  with_deploy_lock
  claim_replica   # first: another server's replica stops the deploy before anything here changes
  install_litestream
  root_dir "$(env_dir "$P_APP")" 0700
  local dir changed=0; dir=$(env_dir "$P_APP")
  # credentials: root-only files; nothing here prints them
  local name; name=$([ "$P_KIND" = sftp ] && echo backup-sftp-key || echo backup.env)
  (umask 077; printf '%s' "$P_CREDENTIALS" | python3 -c '
import json, sys
c = json.load(sys.stdin)
if sys.argv[1] == "sftp":
    sys.stdout.write(c["sftpKey"])
else:
    for k, n in (("accessKeyId", "FDEPLOY_BACKUP_ACCESS_KEY_ID"), ("secretAccessKey", "FDEPLOY_BACKUP_SECRET_ACCESS_KEY")):
        v = c[k]
        if any(ch in v for ch in "\r\n\0\"\\"):
            sys.exit("bad S3 credential: a quote, backslash or newline")
        sys.stdout.write("%s=\"%s\"\n" % (n, v))
' "$P_KIND" >"$dir/backup.cred.tmp") || { rm -f "$dir/backup.cred.tmp"; fail "could not read the backup credentials"; }
  write_if_changed "$dir/$name" 0600 <"$dir/backup.cred.tmp" && changed=1
  rm -f "$dir/backup.cred.tmp"
  [ "$P_KIND" = sftp ] && rm -f "$dir/backup.env" || rm -f "$dir/backup-sftp-key"
  printf '%s' "$P_CONFIG" | write_if_changed "$(ls_config "$P_APP")" 0644 && changed=1
  write_run_conf && changed=1
  install -d -m 0755 /usr/local/lib/fdeploy
  cmp -s "$(dirname "$0")/backup-run.sh" "$RUN" || { install -m 0755 "$(dirname "$0")/backup-run.sh" "$RUN"; changed=1; }
  write_units && changed=1
  write_verify_timer
  systemctl daemon-reload
  systemctl enable --quiet "$(backup_unit "$P_APP")"
  [ -z "${P_VERIFY_EVERY:-}" ] || systemctl enable --now --quiet "$(verify_unit "$P_APP").timer"
  # the replica is this server's now (claim_replica); on a brand-new server every database is
  # restored before anything else uses it (and a missing extra database wherever the replica has it)
  local fresh=$FRESH t0=$SECONDS
  [ -z "$fresh" ] || log "no database on this server: restoring from the replica"
  if ! systemctl start "$(restore_unit "$P_APP")"; then
    if [ -n "$fresh" ]; then
      journal_tail "$(restore_unit "$P_APP")" 20 >&2
      fail "could not restore from the replica ($(sed -n 's/^#REPLICA //p' "$(ls_config "$P_APP")")): the target is unreachable or refused; the deploy stops so that a fresh, empty database never replaces the backups. Fix the target and deploy again"
    fi
    echo "warning: backup of '$P_APP': the replica cannot be reached to restore a database this server does not have yet; replication retries and catches up when the target answers ($(journal_tail "$(restore_unit "$P_APP")" 3 | grep -v '^fdeploy\|Failed\|Finished\|Starting' | tail -n 1 | cut -c1-200))"
  fi
  if [ -n "$fresh" ]; then
    if db_missing; then echo "restore: the replica holds no database yet (a first deploy)"
    else echo "restore: database restored from the replica in $((SECONDS - t0)) s"; fi
  fi
  if db_missing; then
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

backup_settings() {
  load_params
  load_settings "$P_APP" || fail "app '$P_APP' has no base system on this server"
  # shellcheck disable=SC1090
  . "$(run_conf "$P_APP")" 2>/dev/null || fail "app '$P_APP' has no offsite backup configured on this server"
  DBS=$(sed -n 's/^  - path: "\(.*\)"$/\1/p' "$CONFIG")
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
  [ $rc = 0 ] && echo "verify: ok" || fail "verify: FAILED"
}

# restore [TIMESTAMP]: the app and replication stopped, each database restored from the replica to a
# new file, the old one kept aside (<db>.before-restore-<time>), then both started again
restore() {
  backup_settings
  [ -z "${P_TIMESTAMP:-}" ] || [[ $P_TIMESTAMP =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] ||
    fail "bad timestamp '$P_TIMESTAMP' (expected e.g. 2026-12-05T07:00:00Z)"
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
  local db v; v=$(verify_unit "$P_APP")
  echo "replication: $(systemctl is-active "$(backup_unit "$P_APP")" || true)"
  as_backup_user "$RUN" owner "$(run_conf "$P_APP")" || true
  for db in $DBS; do
    echo "== $db"
    as_backup_user "$RUN" status "$(run_conf "$P_APP")" "$db" || true
  done
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
