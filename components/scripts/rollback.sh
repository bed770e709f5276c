#!/usr/bin/env bash
# rollback.sh plan — where a rollback goes (npm run rollback asks over SSH, then pins the answer in
# the stack's `release` setting and runs `pulumi up`, which switches and brings the schema down:
# activate.sh, migrate.sh). Changes nothing. Prints one JSON line: the release to pin, the schema
# version it ran with, and the live release.
# params: APP, TO (a release id, or "" for one step back through the healthy history)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' is not deployed on this server"
current=$(basename "$(readlink -f "$APP_ROOT/current" 2>/dev/null)" 2>/dev/null || true)
[ -f "$APP_ROOT/history.log" ] && [ -n "$current" ] || fail "nothing to roll back: no live release yet"
kept() { [ -f "$APP_ROOT/releases/$1/.fdeploy-release.json" ]; }
if [ -n "$P_TO" ]; then
  [[ $P_TO =~ ^[0-9a-f]{12}$ ]] || fail "bad release id '$P_TO' (expected 12 hex characters, see the releaseHistory output)"
  target=$P_TO
  [ -n "$(schema_of_release "$target")" ] || fail "release $target never went live on this server (see the releaseHistory output)"
else
  target=$(rollback_candidates | while read -r id; do [ "$id" != "$current" ] && kept "$id" && { echo "$id"; break; }; done)
  [ -n "$target" ] || fail "no earlier healthy release is kept on the server (kept: $(ls "$APP_ROOT/releases" | tr '\n' ' '))"
fi
[ "$target" != "$current" ] || fail "release $target is already live"
kept "$target" || fail "release $target is not kept on the server (kept: $(ls "$APP_ROOT/releases" | tr '\n' ' '))"
printf '{"release": "%s", "schema": %s, "live": "%s"}\n' "$target" "$(schema_of_release "$target")" "$current"
