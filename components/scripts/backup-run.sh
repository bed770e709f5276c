#!/usr/bin/env bash
# backup-run.sh run|claim|check|owner CONF, verify|status CONF DB — installed as /usr/local/lib/fdeploy/backup-run.sh by
# backup.sh; runs inside fdeploy-<app>-backup.service as the app user, with the target's
# credentials from systemd ($CREDENTIALS_DIRECTORY/sftp-key, or the S3 keys in the environment).
#
# The lease (issue #14: an old server that comes back must not overwrite the replica of the server
# that replaced it): the replica holds <path>/fdeploy-owner, the id of the server that owns it (random,
# made once per server and app by backup.sh). A deploy claims it (backup.sh create -> claim); `run` replicates only while the replica names
# this server: checked before Litestream starts and every FENCE_EVERY seconds after. A server that
# finds another owner stops replicating and exits 3 (the unit does not restart it); one that
# cannot reach the target keeps trying (Litestream catches up when it answers).
#   run    check, then `litestream replicate` while the lease holds
#   claim  write this server's id as the owner (a deploy to this server)
#   check  exit 0: ours (or none yet: claimed), 3: another server's, 2: target unreachable
set -uo pipefail
CONF=$2
# shellcheck disable=SC1090
. "$CONF"   # ME KIND LITESTREAM CONFIG R_HOST R_PORT R_USER R_PATH KNOWN_HOSTS ENDPOINT REGION R_BUCKET
FENCE_EVERY=${FENCE_EVERY:-10}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

sftp_batch() { # sftp_batch < commands: 0 ok, 255 unreachable
  sftp -q -b - -i "$CREDENTIALS_DIRECTORY/sftp-key" -P "$R_PORT" -o BatchMode=yes -o IdentitiesOnly=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=5 \
    -o ServerAliveInterval=5 -o ServerAliveCountMax=2 "$R_USER@$R_HOST" >/dev/null 2>"$TMP/err"
}
s3_req() { # s3_req METHOD BODYFILE [curl args]: the owner object (SigV4; the payload's hash signed too)
  local url=${ENDPOINT:-https://s3.${REGION:-us-east-1}.amazonaws.com} sha
  sha=$(sha256sum <"$2" | cut -c1-64)
  curl -sS --max-time 10 --aws-sigv4 "aws:amz:${REGION:-us-east-1}:s3" -H "x-amz-content-sha256: $sha" \
    --user "$FDEPLOY_BACKUP_ACCESS_KEY_ID:$FDEPLOY_BACKUP_SECRET_ACCESS_KEY" -X "$1" "${@:3}" \
    "${url%/}/$R_BUCKET/${R_PATH:+$R_PATH/}fdeploy-owner"
}

owner() { # prints the owner ("" if none); exit 2 when the target cannot be reached
  rm -f "$TMP/owner"
  if [ "$KIND" = sftp ]; then
    printf -- '-get %s/fdeploy-owner %s\n' "$R_PATH" "$TMP/owner" | sftp_batch || return 2
  else
    local code
    code=$(s3_req GET /dev/null -o "$TMP/owner" -w '%{http_code}') || return 2
    case $code in 200) ;; 404) rm -f "$TMP/owner" ;; *) return 2 ;; esac
  fi
  cat "$TMP/owner" 2>/dev/null | head -c 64 || true
}

claim() {
  echo "$ME" >"$TMP/me"
  if [ "$KIND" = sftp ]; then
    local p="" d
    { IFS=/; for d in ${R_PATH#/}; do p="$p/$d"; printf -- '-mkdir %s\n' "$p"; done; unset IFS
      printf 'put %s %s/fdeploy-owner.tmp\n' "$TMP/me" "$R_PATH"
      printf -- '-rm %s/fdeploy-owner\n' "$R_PATH"
      printf 'rename %s/fdeploy-owner.tmp %s/fdeploy-owner\n' "$R_PATH" "$R_PATH"; } | sftp_batch ||
      { echo "cannot claim the replica: $(head -c 300 "$TMP/err")" >&2; return 2; }
  else
    local code; code=$(s3_req PUT "$TMP/me" --data-binary "@$TMP/me" -o /dev/null -w '%{http_code}') && [[ $code =~ ^2 ]] ||
      { echo "cannot claim the replica (HTTP ${code:-000})" >&2; return 2; }
  fi
}

check() {
  local o rc
  o=$(owner); rc=$?
  [ $rc = 0 ] || { echo "cannot reach the replica: $(head -c 300 "$TMP/err" 2>/dev/null)" >&2; return 2; }
  if [ -z "$o" ]; then claim; return; fi
  [ "$o" = "$ME" ] && return 0
  echo "the replica now belongs to server $o (a restore elsewhere); this server ($ME) no longer replicates to it" >&2
  return 3
}

# verify CONF DB: the latest replica of DB restored to a temporary file, PRAGMA integrity_check,
# row counts per table next to the live database's (read-only)
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

# status CONF DB: the local position next to the replica's newest (the replication lag)
status() {
  local db=$1
  "$LITESTREAM" status -config "$CONFIG" -json "$db" >"$TMP/local.json" 2>"$TMP/err" || { echo "local: unknown ($(head -c 200 "$TMP/err"))"; }
  "$LITESTREAM" ltx -config "$CONFIG" -json "$db" >"$TMP/replica.json" 2>"$TMP/err" || { echo "replica: unreachable ($(head -c 200 "$TMP/err" | tr '\n' ' '))"; return 0; }
  python3 - "$TMP/local.json" "$TMP/replica.json" <<'PY'
import datetime, json, sys
try:
    local = json.load(open(sys.argv[1]))[0]["local_txid"]
except Exception:
    local = "-"
files = json.load(open(sys.argv[2])) or []
if not files:
    print("replica: empty"); sys.exit(0)
newest = max(files, key=lambda f: int(f["max_txid"], 16))
age = (datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(newest["timestamp"].replace("Z", "+00:00"))).total_seconds()
print("replica: txid %s, written %.0f s ago" % (newest["max_txid"], age))
if local != "-":
    behind = int(local, 16) - int(newest["max_txid"], 16)
    print("local: txid %s; lag: %d transactions behind" % (local, max(behind, 0)))
PY
}

case $1 in
  verify) verify "$3" ;;
  status) status "$3" ;;
  owner) o=$(owner); rc=$?; [ $rc = 0 ] || { echo "lease: target unreachable"; exit 0; }
    if [ -z "$o" ]; then echo "lease: none"; elif [ "$o" = "$ME" ]; then echo "lease: this server ($ME)"; else echo "lease: ANOTHER server ($o): this one does not replicate"; fi ;;
  claim) claim ;;
  check) check ;;
  run)
    # unreachable at start: replicate anyway (Litestream retries; a deploy never waits on the target)
    check; rc=$?; [ $rc = 3 ] && exit 3
    "$LITESTREAM" replicate -config "$CONFIG" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' TERM INT
    while kill -0 $pid 2>/dev/null; do
      sleep "$FENCE_EVERY" & wait $!
      check 2>"$TMP/check.err"; rc=$?
      if [ $rc = 3 ]; then
        cat "$TMP/check.err" >&2
        kill -TERM $pid; wait $pid; exit 3
      fi
    done
    wait $pid; exit $? ;;
  *) echo "usage: backup-run.sh run|claim|check CONF" >&2; exit 2 ;;
esac
