#!/usr/bin/env bash
# release.sh create — install an uploaded release: copy ~/.fdeploy/<app>/uploads/<id> to
# APP_ROOT/releases/<id>, create its own venv there and `pip install -r requirements.txt`.
# A release is content-addressed (its id is a hash of its files), so an installed one is never
# reinstalled; a half-installed one (crash, pip failure) has no marker and is redone from scratch.
# The live release is not touched: switching happens in activate.sh.
# params: APP, RELEASE_ID
. "$(dirname "$0")/lib.sh"
load_params
[[ $P_RELEASE_ID =~ ^[0-9a-f]{12}$ ]] || fail "bad release id '$P_RELEASE_ID'"
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
src=$FDEPLOY_HOME/uploads/$P_RELEASE_ID
dest=$APP_ROOT/releases/$P_RELEASE_ID
marker=$dest/.fdeploy-release.json
if [ -f "$marker" ]; then echo "release $P_RELEASE_ID already installed"; exit 0; fi
[ -d "$src" ] || fail "upload $src is missing"
with_deploy_lock
rm -rf "$dest"
cp -a "$src" "$dest"
rm -rf "$dest/.venv"
chown -R root:root "$dest"; chmod -R u+rwX,go+rX,go-w "$dest"
log "creating venv and installing requirements for $P_RELEASE_ID"
started=$SECONDS
python3 -m venv "$dest/.venv"
if ! out=$("$dest/.venv/bin/pip" install --disable-pip-version-check -q -r "$dest/requirements.txt" 2>&1); then
  printf '%s\n' "$out" | tail -n 20 >&2
  rm -rf "$dest"
  fail "pip install -r requirements.txt failed for release $P_RELEASE_ID; the live release is unchanged"
fi
[ -x "$dest/.venv/bin/gunicorn" ] || { rm -rf "$dest"; fail "gunicorn is not installed by requirements.txt (add gunicorn to it)"; }
printf '{"id": "%s", "installed_at": "%s", "install_seconds": %d}\n' \
  "$P_RELEASE_ID" "$(date -u +%FT%TZ)" $((SECONDS - started)) >"$marker.tmp"
mv "$marker.tmp" "$marker"
echo "release $P_RELEASE_ID installed in $((SECONDS - started))s"
