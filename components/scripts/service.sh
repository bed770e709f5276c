#!/usr/bin/env bash
# service.sh create|delete — the systemd template units that run Gunicorn for one slot (%i):
#   fdeploy-<app>@.socket   systemd owns the listening socket /run/fdeploy-<app>/<slot>.sock (nginx
#                           proxies to it). Because the socket outlives the service, a restart
#                           refuses no connection: they wait in the backlog for the new Gunicorn.
#   fdeploy-<app>@.service  Gunicorn for the slot's code, APP_ROOT/slots/<slot> (a symlink to a
#                           release, set by activate.sh), inheriting the socket (LISTEN_FDS).
# create only writes the units (activate.sh restarts); it prints their revision so that a changed
# unit re-runs the activation.
# With RUNTIME docker (README "Docker runtime") the slot's service runs Gunicorn in a container of
# the slot's release image, fdeploy-<app>:<RELEASE_ID> (docker-image.ts), instead (docker_unit).
# create params: APP, WORKERS, APP_MODULE, TIMEOUT; with RUNTIME docker also ENV_NAMES (the names
#                the environment file sets), SHARED_DIRS (space-separated), MEMORY, CPUS (optional)
. "$(dirname "$0")/lib.sh"

# docker_unit TARGET: the slot's unit for the docker runtime. The container runs as the app's uid
# with a read-only root filesystem, no new privileges, every capability dropped, and the memory/CPU
# limits set. Gunicorn binds /run/fdeploy-<app>/c-<slot>/gunicorn.sock (the only app-writable
# folder under /run/fdeploy-<app>: <app>:www-data 0750, so only the app and nginx reach the socket,
# which is therefore 0777 — Gunicorn chowns it to the app's own group); <slot>.sock, the path
# nginx's live.sock and the health check use, is a root-owned symlink to it. The environment file
# is read by systemd as root and handed to `docker run -e NAME` (names only on the command line, the
# values never in an image). shared/ is mounted at its own path (DATABASE_PATH stays valid), each
# sharedDirs folder at /app/<dir>.
docker_unit() {
  local target=$1 limits="" args
  args=$(docker_app_args) || exit 1
  if [ -n "${P_MEMORY:-}" ]; then [[ $P_MEMORY =~ ^[1-9][0-9]{0,5}[kmg]$ ]] || fail "bad memory limit '$P_MEMORY'"; limits+=" --memory $P_MEMORY"; fi
  if [ -n "${P_CPUS:-}" ]; then [[ $P_CPUS =~ ^[0-9]{1,3}(\.[0-9]{1,3})?$ ]] || fail "bad cpu limit '$P_CPUS'"; limits+=" --cpus $P_CPUS"; fi
  local run=/run/fdeploy-$P_APP slots=$APP_ROOT/slots
  cat <<UNIT
# Managed by flask-deploy (components/scripts/service.sh, runtime docker). Do not edit: the next deploy rewrites it.
[Unit]
Description=Flask app $P_APP, slot %i (Gunicorn in Docker)
Requires=docker.service
After=network.target docker.service

[Service]
Type=simple
EnvironmentFile=$(env_file "$P_APP")
EnvironmentFile=$slots/%i.env
ExecStartPre=/bin/sh -c 'docker rm -f fdeploy-$P_APP-%i >/dev/null 2>&1 || true'
ExecStartPre=/usr/bin/install -d -m 0755 $run
ExecStartPre=/usr/bin/install -d -m 0750 -o $APP_USER -g www-data $run/c-%i
ExecStartPre=/bin/rm -f $run/c-%i/gunicorn.sock
ExecStartPre=/bin/ln -sfn c-%i/gunicorn.sock $run/%i.sock
ExecStart=/usr/bin/docker run --rm --name fdeploy-$P_APP-%i $args$limits --log-opt max-size=10m --log-opt max-file=2 -v $run/c-%i:/run/fdeploy fdeploy-$P_APP:\${RELEASE_ID} gunicorn --bind unix:/run/fdeploy/gunicorn.sock --umask 0000 --workers $P_WORKERS --timeout $P_TIMEOUT --graceful-timeout 30 --worker-tmp-dir /tmp --access-logfile - --error-logfile - --no-control-socket $target
ExecStop=/bin/sh -c 'docker stop -t 35 fdeploy-$P_APP-%i >/dev/null 2>&1 || true'
Restart=on-failure
RestartSec=2
KillMode=mixed
TimeoutStopSec=45

[Install]
WantedBy=multi-user.target
UNIT
}

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
  if [ "${P_RUNTIME:-python}" = docker ]; then
    command -v docker >/dev/null || fail "runtime docker: no docker on the server (the base system installs docker.io)"
    local text; text=$(docker_unit "$target") || exit 1
    printf '%s\n' "$text" | write_if_changed "$unit" 0644 && changed=1
  else
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
  fi
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
  if command -v docker >/dev/null; then   # runtime docker: a container left by a unit stopped hard
    docker ps -aq --filter "name=^fdeploy-$app-" 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
  rm -f "/etc/systemd/system/$unit" "/etc/systemd/system/fdeploy-$app@.socket"
  rm -rf "/etc/systemd/system/multi-user.target.wants/fdeploy-$app@"* "/etc/systemd/system/sockets.target.wants/fdeploy-$app@"*
  rm -rf "/etc/tmpfiles.d/fdeploy-$app.conf" "/run/fdeploy-$app"
  systemctl daemon-reload
  echo "service $unit removed"
}

case ${1:-} in create) create ;; delete) delete "${2:-}" ;; *) fail "usage: service.sh create|delete APP" ;; esac
