#!/usr/bin/env bash
# service.sh delete APP — removes the app's slot units (fdeploy-<app>@.service/.socket) and stops
# every slot: what `pulumi destroy` runs for the Gunicorn service. Writing the units is the agent's
# (unit-stage: agent/fdeploy_agent/units.py); putting them in force is the switch's (activate.sh).
. "$(dirname "$0")/lib.sh"

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
  # runtime docker: the slots' mounts of the app's folders (each unit's stop detaches its own)
  agent docker-unmount <<<"{\"APP\": \"$app\"}" >/dev/null || true
  rm -f "/etc/systemd/system/$unit" "/etc/systemd/system/fdeploy-$app@.socket"
  # the slots' drop-ins (the user each slot runs as: the agent's slot-user)
  rm -rf "/etc/systemd/system/fdeploy-$app@"*.service.d
  rm -rf "/etc/systemd/system/multi-user.target.wants/fdeploy-$app@"* "/etc/systemd/system/sockets.target.wants/fdeploy-$app@"*
  rm -rf "/etc/tmpfiles.d/fdeploy-$app.conf" "/run/fdeploy-$app"
  systemctl daemon-reload
  echo "service $unit removed"
}

case ${1:-} in delete) delete "${2:-}" ;; *) fail "usage: service.sh delete APP" ;; esac
