#!/usr/bin/env bash
# envfile.sh create — write APP_ROOT/shared/.env (mode 0600, owned by the app user) from the ENV
# parameter. Secrets arrive on stdin only; nothing here prints them.
# params: APP, ENV (the file's content)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock
dest=$APP_ROOT/shared/.env
umask 077
if printf '%s' "$P_ENV" | write_if_changed "$dest" 0600; then
  chown "$APP_USER:$APP_USER" "$dest"
  echo "env revision: $(date -u +%s%N)"   # changes whenever the file does: activation restarts then
else
  chown "$APP_USER:$APP_USER" "$dest"
  echo "env unchanged"
fi
