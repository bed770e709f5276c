#!/usr/bin/env bash
# migrate.sh create — bring the database schema up to the uploaded migrations: copies
# ~/.fdeploy/<app>/migrations-<hash> to APP_ROOT/migrations/<hash> (readable by the app user) and
# runs migrate.py up as the app user. migrate.py takes an online backup first when anything is
# pending; a failing migration is rolled back, this exits non-zero, and the deploy stops before
# any switch: the live release keeps serving on the old schema.
# A rollback (DOWN_TO_SCHEMA_OF) runs after the switch instead: it brings the schema down to the
# version the pinned release last went live with (history.jsonl), with the down files of the set in
# force, after a backup (migrate.py down).
# The backup is kept within a disk budget (KEEP_BACKUPS_BYTES, 0 or unset: half of the free space
# plus the kept backups; backup_budget.py, installed beside migrate.py): a copy that would not fit
# is refused with the numbers before the schema changes.
# params: APP, MIGRATIONS (the upload's folder name, migrations-<hash>), KEEP_BACKUPS, KEEP_BACKUPS_BYTES,
#         or APP, DOWN_TO_SCHEMA_OF (a release id), KEEP_BACKUPS, KEEP_BACKUPS_BYTES
. "$(dirname "$0")/lib.sh"
load_params
migrate() { # migrate DIR ARGS…: migrate.py as the new release's slot user (no process of the live
  # release can signal or trace it), after what that user left running is ended (the agent's new-release-user)
  local dir=$1 user; shift
  user=$(agent new-release-user --field user <<<"$P_RAW") || exit 1
  run_as_app "$user" python3 "$APP_ROOT/migrations/migrate.py" --db "$APP_ROOT/shared/db/app.sqlite3" \
    --dir "$dir" --backup-dir "$APP_ROOT/shared/backups" --keep "$P_KEEP_BACKUPS" --keep-bytes "$keep_bytes" "$@"
}
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock
# the agent's migrate-plan (it checks the parameters): "up" with the uploaded set (copied here
# first when it is new), "down" (a rollback: the set in force down to the schema version the pinned
# release last went live with), or "none" (no set was ever applied)
plan() { agent migrate-plan --field "$1" <<<"$P_RAW"; }
mode=$(plan mode) || exit 1
keep_bytes=$(plan keep_bytes) || exit 1
runner() { # this bundle's migrate.py and the module it loads, the pair a down or an up runs
  install -d -m 0755 "$APP_ROOT/migrations"
  install -m 0644 "$(dirname "$0")/backup_budget.py" "$APP_ROOT/migrations/backup_budget.py"
  install -m 0755 "$(dirname "$0")/migrate.py" "$APP_ROOT/migrations/migrate.py"
}
case $mode in
  none) echo "schema_version=0"; exit 0 ;;
  down) runner; migrate "$(plan dir)" down --to "$(plan schema)"; exit 0 ;;
  up) ;;
  *) fail "unknown migration mode '$mode'" ;;
esac
dir=$(plan dir)
if [ "$(plan copy)" = True ]; then
  install -d -m 0755 "$APP_ROOT/migrations"
  rm -rf "$dir.tmp"; cp -a "$FDEPLOY_HOME/$P_MIGRATIONS" "$dir.tmp"
  chown -R root:root "$dir.tmp"; chmod -R u+rwX,go+rX,go-w "$dir.tmp"; mv "$dir.tmp" "$dir"
fi
runner
migrate "$dir" up
# the set the database is now at (root-owned: activate.sh records its version, a rollback runs its
# down files); moved only after success, so a failed migration leaves the previous set current
atomic_symlink "$dir" "$APP_ROOT/migrations/current"
