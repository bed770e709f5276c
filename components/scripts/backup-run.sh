#!/usr/bin/env bash
# backup-run.sh run CONF | verify CONF DB — installed as /usr/local/lib/fdeploy/backup-run.sh by
# backup.sh; runs inside the backup units as the app user, with the target's credentials from
# systemd ($CREDENTIALS_DIRECTORY/sftp-key, or the S3 keys in the environment).
#   run     (fdeploy-<app>-backup.service; stdin: the agent's parameters, {"APP": …}) `litestream
#           replicate` only while the replica's lease names this server: the agent's backup-check
#           (fdeploy_agent/backup_lease.py) decides, before Litestream starts and every FENCE_EVERY
#           seconds after. Another server's lease: Litestream stopped, exit 3 (the unit does not
#           restart it). A target that cannot be reached: replicate anyway (Litestream catches up).
#   verify  the latest replica of DB restored to a temporary file, PRAGMA integrity_check, row counts
#           per table next to the live database's (read-only)
set -uo pipefail
CONF=$2
# shellcheck disable=SC1090
. "$CONF"   # LITESTREAM CONFIG (and the target: the agent reads it)
FENCE_EVERY=${FENCE_EVERY:-10}
AGENT=/usr/local/lib/fdeploy/backup-agent   # installed by backup.sh with this script
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

fence() { python3 -I -B "$AGENT" backup-check --field status <<<"$PARAMS"; }   # ours | other | unreachable

verify() {
  local db=$1 out=$TMP/verify.sqlite3 t0=$SECONDS check t
  "$LITESTREAM" restore -config "$CONFIG" -o "$out" "$db" >"$TMP/restore.log" 2>&1 ||
    { echo "restore: FAILED"; tail -n 3 "$TMP/restore.log"; return 1; }
  echo "restore: ok in $((SECONDS - t0)) s"
  check=$(sqlite3 "$out" "PRAGMA integrity_check" | head -n 5)
  echo "integrity_check: $check"
  [ "$check" = ok ] || return 1
  for t in $(sqlite3 "$out" "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"); do
    echo "rows $t: replica $(sqlite3 "$out" "SELECT count(*) FROM \"$t\""), live $(sqlite3 "file:$db?mode=ro" "SELECT count(*) FROM \"$t\"" 2>/dev/null || echo "?")"
  done
}

case $1 in
  verify) verify "$3" ;;
  run)
    PARAMS=$(cat)
    [ "$(fence)" != other ] || exit 3
    "$LITESTREAM" replicate -config "$CONFIG" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' TERM INT
    while kill -0 $pid 2>/dev/null; do
      sleep "$FENCE_EVERY" & wait $!
      if [ "$(fence)" = other ]; then
        kill -TERM $pid; wait $pid; exit 3
      fi
    done
    wait $pid; exit $? ;;
  *) echo "usage: backup-run.sh run CONF | verify CONF DB" >&2; exit 2 ;;
esac
