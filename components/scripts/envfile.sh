#!/usr/bin/env bash
# envfile.sh create — write the app's environment file /etc/fdeploy/<app>/env (root, 0600, in a
# root-only folder) from the ENV parameter. systemd reads it as root (EnvironmentFile=) and hands
# the values to the app as environment variables; the app user can neither read the file nor
# redirect the write (nothing here touches the app-writable shared/). Secrets arrive on stdin only;
# nothing here prints them.
# params: APP, ENV (the file's content)
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
with_deploy_lock
root_dir /etc/fdeploy 0755
root_dir "$(env_dir "$P_APP")" 0700
umask 077
# the desired copy is what activate.sh puts in force (and takes back if the release fails with it)
printf '%s' "$P_ENV" | write_if_changed "$(env_dir "$P_APP")/env.desired" 0600 || true
if printf '%s' "$P_ENV" | write_if_changed "$(env_file "$P_APP")" 0600; then
  echo "env revision: $(date -u +%s%N)"   # changes whenever the file does: activation restarts then
else
  echo "env unchanged"
fi
