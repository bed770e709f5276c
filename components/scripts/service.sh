#!/usr/bin/env bash
# service.sh delete APP — removes the app's slot units (fdeploy-<app>@.service/.socket) and stops
# every slot: what `pulumi destroy` runs for the Gunicorn service (the agent's service-delete).
# Writing the units is the agent's (unit-stage: agent/fdeploy_agent/units.py); putting them in
# force is the switch's (activate.sh).
. "$(dirname "$0")/lib.sh"

delete() {
  check_app_name "$1"
  agent service-delete --app "$1" >/dev/null || exit 1
  echo "service $(service_unit "$1") removed"
}

case ${1:-} in delete) delete "${2:-}" ;; *) fail "usage: service.sh delete APP" ;; esac
