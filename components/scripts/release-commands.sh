#!/usr/bin/env bash
# release-commands.sh create — the app's own one-off release commands (e.g. `flask db upgrade`,
# `flask --app app init-db`), run in the new release before it goes live: after the SQL migrations,
# as the new release's slot user (not the live release's), in the slots' sandbox, with the app's environment, working directory and venv
# (PATH). First an online backup of every SQLite database in shared/ (as the app user). A failing
# command stops the deploy before the switch: the live release keeps serving; the database is not
# restored (the live release kept writing meanwhile) and the message names the backup.
# With RUNTIME docker each command runs in a container of the release's image, fdeploy-<app>:<id>,
# with the slots' flags (lib.sh docker_app_args: app uid, read-only, no capabilities, shared/).
# The decisions are the agent's (release-commands-prepare: the commands, the slot user, the backup
# as that user, see fdeploy_agent/release_commands.py); this runs each command in a transient unit.
# params: APP, RELEASE_ID, COMMANDS (JSON list of command lines, each run by /bin/sh -c), KEEP_BACKUPS,
#         RUNTIME, ENV_NAMES, SHARED_DIRS (docker)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
# the containers' mounts (made by the agent's docker-args) are detached at the end, however it ends
on_exit() {
  local rc=$?
  [ "${P_RUNTIME:-python}" != docker ] || agent docker-unmount --app "$P_APP" --set SLOT=release-cmd >/dev/null || true
  deploy_lock_released
  exit $rc
}
with_deploy_lock
trap on_exit EXIT
release=$APP_ROOT/releases/$P_RELEASE_ID
# The backup: every SQLite file in shared/ (not backups/), by SQLite's online backup, as the new
# release's slot user (no process of the live release can signal or trace it; root follows no path
# in shared/), under a time limit; the oldest pre-release backups beyond KEEP_BACKUPS go. Sets
# user, restore (the advice when a command fails: where the backup is) and commands.
user="" restore="" commands=()
decided=$(agent release-commands-prepare --field shell <<<"$P_RAW") || exit 1
eval "$decided"   # shell assignments, every value quoted by the agent (shlex)
[ -n "$user" ] || fail "the agent chose no user for the release commands"

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
    fail "release command $n ('$cmd') failed (exit $rc) for release $P_RELEASE_ID (flask-deploy:releaseCommands); it is not live, the live release keeps serving
The database may be partly changed and is not restored automatically (the live release kept writing meanwhile). $restore"
  fi
done
echo "release commands of $P_RELEASE_ID: $n passed"
