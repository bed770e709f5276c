#!/usr/bin/env bash
# release-commands.sh create — the app's own one-off release commands (e.g. `flask db upgrade`,
# `flask --app app init-db`), run in the new release before it goes live: after the SQL migrations,
# as the new release's slot user (not the live release's), in the slots' sandbox, with the app's environment, working directory and venv
# (PATH). First an online backup of every SQLite database in shared/ (as the app user). A failing
# command stops the deploy before the switch: the live release keeps serving; the database is not
# restored (the live release kept writing meanwhile) and the message names the backup.
# With RUNTIME docker each command runs in a container of the release's image, fdeploy-<app>:<id>,
# with the slots' flags (lib.sh docker_app_args: app uid, read-only, no capabilities, shared/).
# params: APP, RELEASE_ID, COMMANDS (JSON list of command lines, each run by /bin/sh -c), KEEP_BACKUPS,
#         RUNTIME, ENV_NAMES, SHARED_DIRS (docker)
. "$(dirname "$0")/lib.sh"
load_params
[[ $P_RELEASE_ID =~ ^[0-9a-f]{12}$ ]] || fail "bad release id '$P_RELEASE_ID'"
[[ $P_KEEP_BACKUPS =~ ^[0-9]{1,3}$ ]] || fail "bad backup count '$P_KEEP_BACKUPS'"
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
# the containers' mounts (made by the agent's docker-args) are detached at the end, however it ends
on_exit() {
  local rc=$?
  [ "${P_RUNTIME:-python}" != docker ] || agent docker-unmount <<<"{\"APP\": \"$P_APP\", \"SLOT\": \"release-cmd\"}" >/dev/null || true
  deploy_lock_released
  exit $rc
}
with_deploy_lock
trap on_exit EXIT
release=$APP_ROOT/releases/$P_RELEASE_ID
[ -f "$release/.fdeploy-release.json" ] || fail "release $P_RELEASE_ID is not installed"
mapfile -d '' -t commands < <(printf '%s' "$P_COMMANDS" | python3 -c 'import json,sys; sys.stdout.write("".join(c + "\0" for c in json.load(sys.stdin)))')

# the backup: every SQLite file in shared/ (not backups/), by SQLite's online backup, as the app
# user (root follows no path in shared/); the oldest pre-release backups beyond KEEP_BACKUPS go.
# Nothing the app put there can hang it: each file's type is checked before it is opened (a FIFO,
# socket or device fails the step at once, naming it; a symlink is not backed up), opened with
# O_NONBLOCK|O_NOFOLLOW and checked again; and the whole step has a time limit.
backup=$APP_ROOT/shared/backups/pre-release-$(date -u +%Y%m%dT%H%M%SZ)-$P_RELEASE_ID
limit=300
rc=0
# the new release's slot user (the agent's new-release-user): no process of the live release can
# signal or trace what runs as it
user=$(agent new-release-user --field user <<<"$P_RAW") || exit 1
saved=$(cd / && run_as_app "$user" timeout -k 10 "$limit" python3 -c '
import errno, os, sqlite3, stat, sys, shutil
shared, dest, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}
def refuse(p, mode):
    sys.exit("%s is %s, not a regular file: remove it (as the app user) and deploy again"
             % (os.path.relpath(p, os.path.dirname(shared)), KIND.get(stat.S_IFMT(mode), "not a regular file")))
def header(p):
    """The first 16 bytes of the regular file p; None for a symlink or no file (never blocks)."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        refuse(p, st.st_mode)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOENT): return None   # swapped meanwhile
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode): refuse(p, st.st_mode)
        return fh.read(16)
dbs = []   # every file checked first: a refusal leaves no partial backup
for d, dirs, names in os.walk(shared):
    if d == shared and "backups" in dirs: dirs.remove("backups")
    for name in sorted(names):
        p = os.path.join(d, name)
        if not name.endswith((".sqlite", ".sqlite3", ".db")): continue
        if header(p) != b"SQLite format 3\x00": continue
        for side in ("-wal", "-shm", "-journal"):   # SQLite opens these too
            try: st = os.lstat(p + side)
            except FileNotFoundError: continue
            if not stat.S_ISREG(st.st_mode): refuse(p + side, st.st_mode)
        dbs.append(p)
n = 0
for p in dbs:
    out = os.path.join(dest, os.path.relpath(p, shared))
    os.makedirs(os.path.dirname(out), mode=0o770, exist_ok=True)
    src = sqlite3.connect("file:%s?mode=ro" % p, uri=True); dst = sqlite3.connect(out)
    with dst: src.backup(dst)
    src.close(); dst.close(); n += 1
old = sorted(e for e in os.listdir(os.path.join(shared, "backups")) if e.startswith("pre-release-"))
for e in old[:-keep]: shutil.rmtree(os.path.join(shared, "backups", e), ignore_errors=True)
print(n)' "$APP_ROOT/shared" "$backup" "$P_KEEP_BACKUPS") || rc=$?
if [ $rc = 124 ] || [ $rc = 137 ]; then
  fail "the backup of the databases in shared/ before the release commands did not finish within ${limit}s (is a database locked by the app for that long?); no release command ran, the live release keeps serving; deploy again"
fi
[ $rc = 0 ] || fail "could not back up the databases in shared/ before the release commands (see above); no release command ran, the live release keeps serving"
[ "$saved" -gt 0 ] && log "backup before the release commands: $saved database(s) in $backup" || backup=""

props=()
while IFS= read -r line; do props+=(-p "$line"); done < <(hardening "$APP_ROOT")
# the environment this deploy staged (the agent's env-stage): the one in force is still the live
# release's until the switch
staged_env=$(env_dir "$P_APP")/env.desired
n=0
for cmd in "${commands[@]}"; do
  n=$((n + 1))
  log "release command $n: $cmd"
  rc=0
  if [ "${P_RUNTIME:-python}" = docker ]; then
    args=$(docker_app_args) || exit 1
    # shellcheck disable=SC2086 # validated words (lib.sh)
    # a stopped unit stops the docker client; the container goes with ExecStopPost
    run_unit "fdeploy-$P_APP-release-cmd-$$-$n" -p ExecStopPost="-/usr/bin/docker rm -f fdeploy-$P_APP-release-cmd-$$-$n" \
      -p EnvironmentFile="$staged_env" -p Environment="RELEASE_ID=$P_RELEASE_ID" \
      /usr/bin/docker run --rm --name "fdeploy-$P_APP-release-cmd-$$-$n" $args "fdeploy-$P_APP:$P_RELEASE_ID" \
      /bin/sh -c "$cmd" </dev/null >&2 || rc=$?
  else
  run_unit "fdeploy-$P_APP-release-cmd-$$-$n" \
    -p User="$user" -p Group="$APP_USER" -p WorkingDirectory="$release" \
    -p EnvironmentFile="$staged_env" -p Environment="RELEASE_ID=$P_RELEASE_ID" \
    -p Environment="PATH=$release/.venv/bin:/usr/local/bin:/usr/bin:/bin" -p Environment="HOME=/tmp" \
    "${props[@]}" /bin/sh -c "$cmd" </dev/null >&2 || rc=$?
  fi
  if [ $rc != 0 ]; then
    restore="No SQLite database was found in shared/ to back up."
    [ -n "$backup" ] && restore="A backup taken before the release commands is in $backup: to restore it, stop the app (systemctl stop 'fdeploy-$P_APP@*.service'), copy its files back over those in $APP_ROOT/shared/ as $APP_USER (keeping them group-writable), and deploy again."
    fail "release command $n ('$cmd') failed (exit $rc) for release $P_RELEASE_ID; it is not live, the live release keeps serving. The database may be partly changed and is not restored automatically (the live release kept writing meanwhile). $restore"
  fi
done
echo "release commands of $P_RELEASE_ID: $n passed"
