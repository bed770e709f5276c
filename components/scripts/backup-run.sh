#!/usr/bin/env bash
# backup-run.sh run|claim|check|owner CONF, verify|status CONF DB — installed as /usr/local/lib/fdeploy/backup-run.sh by
# backup.sh; runs inside fdeploy-<app>-backup.service as the app user, with the target's
# credentials from systemd ($CREDENTIALS_DIRECTORY/sftp-key, or the S3 keys in the environment).
#
# The lease (issue #14, issue 24 item 5: an old server that comes back must not overwrite the replica
# of the server that replaced it): the replica holds <path>/fdeploy-owner, one line
# "<id> <host> <claimed-at>" naming the server that owns it (the id: random, made once per server and
# app by backup.sh; the host: the stack's server.host then; an older lease holds the id alone).
# Every write of it is atomic, so two servers never both own it:
#   S3    create: PUT If-None-Match: *; replace: PUT If-Match: <ETag of the lease just read>
#         (412: someone else wrote it first: read it again and decide again)
#   SFTP  create: put a temp file, `ln` it to fdeploy-owner (hardlink@openssh.com: link(2), which
#         never overwrites), rm the temp; replace: read it right before, rm it only when it still
#         names the server taken over, then create; every claim reads it back to know who won.
# A deploy decides (`claim`, run by backup.sh create as root before anything on the server changes):
#   none yet -> claimed; this server's -> nothing to do; another server's -> taken over only when
#   this server has no database (FRESH=1: a new server restoring from the replica: the recovery
#   path) or backup.takeover names that server (TAKEOVER=<its id>), else refused (exit 3, the
#   message names both servers and the fix).
# `run` replicates only while the lease names this server: checked before Litestream starts and every
# FENCE_EVERY seconds after. A server that finds another owner stops replicating and exits 3 (the
# unit does not restart it); one that cannot reach the target keeps trying (Litestream catches up).
#   run    check, then `litestream replicate` while the lease holds
#   claim  the deploy's decision (env FRESH, TAKEOVER): 0 ours now, 3 refused, 2 target unreachable
#   check  exit 0: ours (or none yet: claimed), 3: another server's, 2: target unreachable
#   owner  the lease, for `fdeploy backup status`
set -uo pipefail
CONF=$2
# shellcheck disable=SC1090
. "$CONF"   # ME HOST KIND LITESTREAM CONFIG R_HOST R_PORT R_USER R_PATH KNOWN_HOSTS ENDPOINT REGION R_BUCKET
HOST=${HOST:-}
FENCE_EVERY=${FENCE_EVERY:-10}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
LEASE=fdeploy-owner

replica_name() {
  if [ "$KIND" = sftp ]; then echo "sftp://$R_USER@$R_HOST:$R_PORT$R_PATH"; else echo "s3://$R_BUCKET${R_PATH:+/$R_PATH}"; fi
}
sftp_batch() { # sftp_batch < commands: 0 ok, 1 a command failed, 255 unreachable
  sftp -q -b - -i "$CREDENTIALS_DIRECTORY/sftp-key" -P "$R_PORT" -o BatchMode=yes -o IdentitiesOnly=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=5 \
    -o ServerAliveInterval=5 -o ServerAliveCountMax=2 "$R_USER@$R_HOST" >/dev/null 2>"$TMP/err"
}
s3_req() { # s3_req METHOD BODYFILE [curl args]: the lease object (SigV4; the payload's hash signed too)
  local url=${ENDPOINT:-https://s3.${REGION:-us-east-1}.amazonaws.com} sha
  sha=$(sha256sum <"$2" | cut -c1-64)
  # the keys reach curl as its config on stdin, never on its command line
  printf 'user = "%s:%s"\n' "$FDEPLOY_BACKUP_ACCESS_KEY_ID" "$FDEPLOY_BACKUP_SECRET_ACCESS_KEY" |
    curl -sS --max-time 10 --config - --aws-sigv4 "aws:amz:${REGION:-us-east-1}:s3" -H "x-amz-content-sha256: $sha" \
      -X "$1" "${@:3}" "${url%/}/$R_BUCKET/${R_PATH:+$R_PATH/}$LEASE" 2>"$TMP/err"
}

# parse_lease FILE: OWNER_ID, OWNER_HOST, OWNER_AT from a lease's first line ("" when there is none)
parse_lease() {
  OWNER_ID="" OWNER_HOST="" OWNER_AT=""
  [ -s "$1" ] || return 0
  local id="" host="" at=""
  read -r id host at _ < <(head -c 512 "$1" | head -n 1 | tr -cd 'A-Za-z0-9.:_ -' ) || true
  OWNER_ID=${id:0:64} OWNER_HOST=${host:0:253} OWNER_AT=${at:0:32}
  [ -n "$OWNER_ID" ] || OWNER_ID="(unreadable)"
}

# read_lease: the lease now (OWNER_*, and OWNER_ETAG on S3); 2 when the target cannot be reached
read_lease() {
  rm -f "$TMP/owner"; OWNER_ETAG=""
  if [ "$KIND" = sftp ]; then
    printf -- '-get %s/%s %s\n' "$R_PATH" "$LEASE" "$TMP/owner" | sftp_batch || return 2
  else
    local code
    code=$(s3_req GET /dev/null -D "$TMP/hdr" -o "$TMP/owner" -w '%{http_code}') || return 2
    case $code in
      200) OWNER_ETAG=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' "$TMP/hdr" | tr -cd 'A-Za-z0-9"/_-' | head -c 128) ;;
      404) rm -f "$TMP/owner" ;;
      *) echo "HTTP $code: $(head -c 200 "$TMP/owner" 2>/dev/null)" >"$TMP/err"; return 2 ;;
    esac
  fi
  parse_lease "$TMP/owner"
}

# write_lease create|replace: the lease naming this server, atomically; then it is read back.
# 0: this server's now; 1: another write won (OWNER_* hold the lease as it is now); 2: unreachable
write_lease() {
  printf '%s %s %s\n' "$ME" "${HOST:--}" "$(date -u +%FT%TZ)" >"$TMP/me"
  if [ "$KIND" = sftp ]; then
    local p="" d tmp="$R_PATH/$LEASE.$ME.tmp"
    { IFS=/; for d in ${R_PATH#/}; do p="$p/$d"; printf -- '-mkdir %s\n' "$p"; done; unset IFS
      printf 'put %s %s\n' "$TMP/me" "$tmp"
      [ "$1" = replace ] && printf -- '-rm %s/%s\n' "$R_PATH" "$LEASE"
      printf -- '-ln %s %s/%s\n' "$tmp" "$R_PATH" "$LEASE"   # fails when it exists: someone else's
      printf -- '-rm %s\n' "$tmp"; } | sftp_batch
    local rc=$? why
    [ $rc = 255 ] && return 2
    why=$(head -c 300 "$TMP/err")
    read_lease || return 2
    if [ -z "$OWNER_ID" ]; then
      if [ $rc = 0 ]; then
        echo "the SFTP server did not create $R_PATH/$LEASE as a hard link of the temporary file (ln: hardlink@openssh.com, which OpenSSH's sftp server offers): $why" >&2
      else
        echo "cannot write the lease $R_PATH/$LEASE.$ME.tmp on the SFTP server (a full disk, permissions?): $why" >&2
      fi
      return 2
    fi
    [ "$OWNER_ID" = "$ME" ] && return 0 || return 1
  fi
  local code cond
  if [ "$1" = create ]; then cond="If-None-Match: *"; else cond="If-Match: $OWNER_ETAG"; fi
  code=$(s3_req PUT "$TMP/me" --data-binary "@$TMP/me" -H "$cond" -o "$TMP/put" -w '%{http_code}') ||
    { echo "cannot write the lease: $(head -c 300 "$TMP/err")" >&2; return 2; }
  case $code in
    2??) read_lease || return 2
         [ "$OWNER_ID" = "$ME" ] && return 0 || return 1 ;;
    412|409|404) read_lease || return 2; return 1 ;;   # someone else wrote (or removed) it first
    *) echo "cannot write the lease (HTTP $code: $(head -c 200 "$TMP/put" 2>/dev/null))" >&2; return 2 ;;
  esac
}

owner_desc() { # the owner as people see it: id, host, when
  local h=${OWNER_HOST:-}
  if [ -n "$h" ] && [ "$h" != - ]; then h="host $h"; else h="host not recorded: an older lease"; fi
  printf '%s (%s%s)' "$OWNER_ID" "$h" "${OWNER_AT:+, claimed $OWNER_AT}"
}
me_desc() { printf '%s (host %s)' "$ME" "${HOST:-?}"; }

refuse() { # the deploy's refusal: the cause (both servers), then the fix
  local other=${OWNER_HOST:-}; [ "$other" = - ] && other=""
  local set=""
  if [ "${TAKEOVER:-}" = "$ME" ]; then set=" (backup.takeover names this server itself: it takes over only from the server it names, the owner)"
  elif [ -n "${TAKEOVER:-}" ]; then set=" (backup.takeover is set to $TAKEOVER, which is not the owner: it takes over only from the server it names)"; fi
  echo "the replica $(replica_name) belongs to another server: $(owner_desc); this server is $(me_desc) and has a database of its own${set}. Deploying here would let this server replicate its own, older database over the other server's newer writes, so the deploy stops; nothing on this server was changed. If the other server is the live one: point server.host (and server.hostKey) back at ${other:-it} and deploy again. To make this server the owner on purpose (the other server stops replicating; its writes that this server does not have can no longer be restored): pulumi config set --path backup.takeover $OWNER_ID, then pulumi up" >&2
}

# claim: the deploy's decision (backup.sh create, as root, before anything on the server changes).
# Env: FRESH=1 when this server has no database (it restores from the replica), TAKEOVER=backup.takeover.
# A takeover applies to the owner seen first: when another write wins meanwhile (a 412, a hard link
# that exists), the lease is read again and that new owner is refused (someone else claimed it just now).
claim() {
  local reason prev rc first="" n=0
  while :; do
    read_lease || { echo "cannot reach the replica $(replica_name): $(head -c 300 "$TMP/err" | tr '\n' ' ')" >&2; return 2; }
    n=$((n + 1))
    [ $n = 1 ] && first=${OWNER_ID:-none}
    if [ $n -gt 1 ] && [ "$OWNER_ID" != "$ME" ] && [ "${OWNER_ID:-none}" != "$first" ]; then
      echo "the replica $(replica_name) was claimed by another server during this deploy: $(owner_desc) (before: $first); nothing on this server was changed. Find out which server is to own it: deploy again to see both, and use backup.takeover to take it over on purpose" >&2
      return 3
    fi
    [ $n -le 3 ] || { echo "the lease of $(replica_name) kept changing during this deploy (now: $(owner_desc)); nothing on this server was changed: deploy again" >&2; return 3; }
    if [ -z "$OWNER_ID" ]; then
      write_lease create; rc=$?
      [ $rc = 0 ] && echo "lease: the replica is claimed for this server $(me_desc)"
      [ $rc = 1 ] && continue   # another server created it first: decide again
      return $rc
    fi
    if [ "$OWNER_ID" = "$ME" ]; then
      echo "lease: the replica is this server's $(me_desc)"
      [ -z "${TAKEOVER:-}" ] || echo "note: backup.takeover ($TAKEOVER) has nothing to do (this server owns the replica); it can be removed: pulumi config rm --path backup.takeover"
      return 0
    fi
    if [ -n "${FRESH:-}" ]; then
      reason="this server has no database: it restores from the replica (a new server after a server loss)"
    elif [ -n "${TAKEOVER:-}" ] && [ "$TAKEOVER" = "$OWNER_ID" ]; then
      reason="backup.takeover names that server"
    else
      refuse; return 3
    fi
    prev=$(owner_desc)
    write_lease replace; rc=$?
    if [ $rc = 0 ]; then
      echo "lease: this server $(me_desc) took the replica over from server $prev: $reason; that server stops replicating within ${FENCE_EVERY} s"
      return 0
    fi
    [ $rc = 2 ] && return 2
  done
}

# check (run): 0 this server's (or none yet: claimed now), 3 another server's, 2 unreachable
check() {
  local rc
  read_lease || { echo "cannot reach the replica: $(head -c 300 "$TMP/err" 2>/dev/null)" >&2; return 2; }
  if [ -z "$OWNER_ID" ]; then
    write_lease create; rc=$?
    [ $rc = 1 ] || return $rc
  fi
  [ "$OWNER_ID" = "$ME" ] && return 0
  echo "the replica now belongs to server $(owner_desc) (a restore or a takeover there); this server ($ME) no longer replicates to it and stays stopped. To make this server the owner again on purpose: backup.takeover $OWNER_ID and deploy to it" >&2
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
  owner) read_lease || { echo "lease: target unreachable"; exit 0; }
    if [ -z "$OWNER_ID" ]; then echo "lease: none"
    elif [ "$OWNER_ID" = "$ME" ]; then echo "lease: this server $(owner_desc)"
    else echo "lease: ANOTHER server $(owner_desc): this one ($ME) does not replicate (backup.takeover $OWNER_ID and a deploy here make it the owner)"; fi ;;
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
  *) echo "usage: backup-run.sh run|claim|check|owner CONF, verify|status CONF DB" >&2; exit 2 ;;
esac
