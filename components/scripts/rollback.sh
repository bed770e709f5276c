#!/usr/bin/env bash
# rollback.sh create — one-command rollback (scripts/rollback.ts runs it over SSH): make a
# previous release live again without uploading or installing anything, then bring the database
# schema down to the version that release ran with (migrate.py down takes a backup first).
# Order: code first, schema second. Migrations are expand/contract (README), so the older code
# runs on the newer schema for the few seconds in between; the reverse would not hold.
# params: APP, TO (a release id, or "" for the newest healthy release before the live one)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' is not deployed on this server"
history=$APP_ROOT/history.log
current=$(basename "$(readlink -f "$APP_ROOT/current" 2>/dev/null)" 2>/dev/null || true)
[ -f "$history" ] && [ -n "$current" ] || fail "nothing to roll back: no live release yet"
if [ -n "$P_TO" ]; then
  [[ $P_TO =~ ^[0-9a-f]{12}$ ]] || fail "bad release id '$P_TO' (expected 12 hex characters, see the releases output)"
  target=$P_TO
else
  target=$(awk -v cur="$current" '$3 == "live" && $2 != cur {print $2}' "$history" | tac |
    while read -r id; do [ -f "$APP_ROOT/releases/$id/.fdeploy-release.json" ] && { echo "$id"; break; }; done)
  [ -n "$target" ] || fail "no earlier healthy release is left on the server"
fi
[ "$target" != "$current" ] || fail "release $target is already live"
[ -f "$APP_ROOT/releases/$target/.fdeploy-release.json" ] || fail "release $target is not on the server (kept: $(ls "$APP_ROOT/releases" | tr '\n' ' '))"
schema=$(awk -v id="$target" '$2 == id && $3 == "live" {v=$5} END {sub("schema=", "", v); print v}' "$history")
[[ $schema =~ ^[0-9]+$ ]] || fail "the schema version of release $target is unknown"
params=$APP_ROOT/slots/activation.json
[ -f "$params" ] || fail "no activation settings on the server; deploy once with this version first"

log "rolling back from $current to $target (schema version $schema)"
# the activation as the last deploy did it, with the target release (activate.sh takes the lock)
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); p["RELEASE_ID"]=sys.argv[2]; print(json.dumps(p))' \
  "$params" "$target" | bash "$(dirname "$0")/activate.sh" create
with_deploy_lock
runuser -u "$APP_USER" -- python3 "$APP_ROOT/migrations/migrate.py" --db "$APP_ROOT/shared/db/app.sqlite3" \
  --dir "$APP_ROOT/migrations/current" --backup-dir "$APP_ROOT/shared/backups" down --to "$schema"
# the release now runs with this schema version: the next rollback reads it from here
printf '%s %s live strategy=rollback schema=%s\n' "$(date -u +%FT%TZ)" "$target" "$schema" >>"$history"
echo "rolled back to $target"
