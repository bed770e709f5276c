#!/usr/bin/env bash
# migrate.sh create — bring the database schema up to the uploaded migrations: copies
# ~/.fdeploy/<app>/migrations-<hash> to APP_ROOT/migrations/<hash> (readable by the app user) and
# runs migrate.py up as the app user. migrate.py takes an online backup first when anything is
# pending; a failing migration is rolled back, this exits non-zero, and the deploy stops before
# any switch: the live release keeps serving on the old schema.
# params: APP, MIGRATIONS (the upload's folder name, migrations-<hash>), KEEP_BACKUPS
. "$(dirname "$0")/lib.sh"
load_params
[[ $P_MIGRATIONS =~ ^migrations-[0-9a-f]{12}$ ]] || fail "bad migrations upload '$P_MIGRATIONS'"
[[ $P_KEEP_BACKUPS =~ ^[0-9]{1,3}$ ]] || fail "bad backup count '$P_KEEP_BACKUPS'"
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock
dir=$APP_ROOT/migrations/${P_MIGRATIONS#migrations-}
if [ ! -d "$dir" ]; then
  install -d -m 0755 "$APP_ROOT/migrations"
  rm -rf "$dir.tmp"; cp -a "$FDEPLOY_HOME/$P_MIGRATIONS" "$dir.tmp"
  chown -R root:root "$dir.tmp"; chmod -R u+rwX,go+rX,go-w "$dir.tmp"; mv "$dir.tmp" "$dir"
fi
install -m 0755 "$(dirname "$0")/migrate.py" "$APP_ROOT/migrations/migrate.py"
runuser -u "$APP_USER" -- python3 "$APP_ROOT/migrations/migrate.py" --db "$APP_ROOT/shared/db/app.sqlite3" \
  --dir "$dir" --backup-dir "$APP_ROOT/shared/backups" --keep "$P_KEEP_BACKUPS" up
# the set the database is now at (root-owned: activate.sh records its version, rollback.sh runs its
# down files); moved only after success, so a failed migration leaves the previous set current
atomic_symlink "$dir" "$APP_ROOT/migrations/current"
