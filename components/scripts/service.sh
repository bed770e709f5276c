#!/usr/bin/env bash
# service.sh create|delete — the systemd template units that run Gunicorn for one slot (%i):
#   fdeploy-<app>@.socket   systemd owns the listening socket /run/fdeploy-<app>/<slot>.sock (nginx
#                           proxies to it). Because the socket outlives the service, a restart
#                           refuses no connection: they wait in the backlog for the new Gunicorn.
#   fdeploy-<app>@.service  Gunicorn for the slot's code, APP_ROOT/slots/<slot> (a symlink to a
#                           release, set by activate.sh), inheriting the socket (LISTEN_FDS).
# create only writes the units (activate.sh restarts); it prints their revision so that a changed
# unit re-runs the activation.
# create params: APP, WORKERS, APP_MODULE, TIMEOUT
. "$(dirname "$0")/lib.sh"

create() {
  load_params
  [[ $P_WORKERS =~ ^[0-9]{1,2}$ ]] || fail "bad worker count '$P_WORKERS'"
  [[ $P_TIMEOUT =~ ^[0-9]{1,4}$ ]] || fail "bad timeout '$P_TIMEOUT'"
  check_app_module "$P_APP_MODULE"
  # one ExecStart word: quoted for systemd when it has more than name characters (a factory's args)
  local target; target=$(unit_word "$P_APP_MODULE")
  load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
  with_deploy_lock
  local unit=/etc/systemd/system/$(service_unit "$P_APP") slots=$APP_ROOT/slots changed=0
  local socket=/etc/systemd/system/fdeploy-$P_APP@.socket
  install -d -m 0755 "$slots"
  cat <<UNIT | write_if_changed "$socket" 0644 && changed=1
# Managed by flask-deploy (components/scripts/service.sh). Do not edit: the next deploy rewrites it.
[Unit]
Description=Socket of Flask app $P_APP, slot %i

[Socket]
ListenStream=/run/fdeploy-$P_APP/%i.sock
SocketUser=$APP_USER
SocketGroup=www-data
SocketMode=0660
DirectoryMode=0755
Backlog=4096

[Install]
WantedBy=sockets.target
UNIT
  cat <<UNIT | write_if_changed "$unit" 0644 && changed=1
# Managed by flask-deploy (components/scripts/service.sh). Do not edit: the next deploy rewrites it.
[Unit]
Description=Flask app $P_APP, slot %i (Gunicorn)
Requires=fdeploy-$P_APP@%i.socket
After=network.target fdeploy-$P_APP@%i.socket

[Service]
Type=simple
User=$APP_USER
Group=$APP_USER
WorkingDirectory=$slots/%i
EnvironmentFile=$(env_file "$P_APP")
EnvironmentFile=$slots/%i.env
ExecStart=$slots/%i/.venv/bin/gunicorn --workers $P_WORKERS --timeout $P_TIMEOUT --graceful-timeout 30 --access-logfile - --error-logfile - --no-control-socket $target
ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure
RestartSec=2
KillMode=mixed
TimeoutStopSec=40
$(hardening "$APP_ROOT")

[Install]
WantedBy=multi-user.target
UNIT
  # what activate.sh puts in force (and takes back if the release fails with it)
  root_dir "$(env_dir "$P_APP")" 0700
  install -m 0600 "$unit" "$(env_dir "$P_APP")/service.desired"
  [ $changed = 1 ] && systemctl daemon-reload
  echo "unit revision: $(cat "$socket" "$unit" | sha256sum | cut -c1-16)"
}

delete() {
  local app=$1 unit
  check_app_name "$app"
  unit=$(service_unit "$app")
  for u in $(systemctl list-units --all --plain --no-legend "fdeploy-$app@*" 2>/dev/null | awk '{print $1}'); do
    systemctl disable --now --quiet "$u" || true
  done
  rm -f "/etc/systemd/system/$unit" "/etc/systemd/system/fdeploy-$app@.socket"
  rm -rf "/etc/systemd/system/multi-user.target.wants/fdeploy-$app@"* "/etc/systemd/system/sockets.target.wants/fdeploy-$app@"*
  rm -rf "/etc/tmpfiles.d/fdeploy-$app.conf" "/run/fdeploy-$app"
  systemctl daemon-reload
  echo "service $unit removed"
}

case ${1:-} in create) create ;; delete) delete "${2:-}" ;; *) fail "usage: service.sh create|delete APP" ;; esac
