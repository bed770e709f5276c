#!/usr/bin/env bash
# state.sh read|repair — the app's live state on this server, as the stack's ServerState resource
# sees it (`pulumi refresh`, `pulumi preview --refresh`), and the repair of what drifted
# (`pulumi up --refresh`). What the stack wants is on the server already: the settings' .desired
# copies in /etc/fdeploy/<app>/ (the agent's unit-stage, env-stage; nginx.sh) and the last activation's
# parameters that went live (slots/activation.live.json: the release, strategy and health check).
#   read    prints one JSON object (the agent's state-report): release (the live slot's release),
#           running (the live slot's service is active), and whether the unit, the environment
#           file, the nginx site and the rendered shared files' links in force are the deployed
#           ones. Under the deploy lock: a deploy of another stack in progress (mid-restart,
#           mid-switch) is waited for, so the stack records a settled state
#   now     the same report at once, without waiting (fdeploy status)
#   repair  (the agent's state-repair decides) puts the deployed site back in force, reinstalls the
#           deployed release from its upload if it was deleted, and, when a unit, the environment or a
#           shared link drifted or the app does not run the deployed release, activates it again
#           (activate.sh: the deployed settings in force, health-checked, with fallback)
# Maintenance mode (/etc/fdeploy/<app>/maintenance.conf, ops.sh) is intended state, not drift: the
# site in force includes it as written by the stack, so neither read nor repair looks at it.
# params: APP
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' is not deployed on this server (pulumi up deploys it)"

# the report (the agent's state-report: one JSON object); the fields below are the ServerState's
report() { agent state-report <<<"$P_RAW"; }

# the agent's state-repair decides and puts the deployed site back; this runs what it asks for
repair() {
  local plan install
  with_deploy_lock
  plan=$(agent state-repair <<<"$P_RAW") || exit 1
  if [ "$(result_field site <<<"$plan")" = True ]; then
    ensure_upstream "$P_APP"
    if ! nginx -t 2>&1 >&2; then
      agent site-restore <<<"$P_RAW" >/dev/null
      fail "nginx rejects its configuration with the deployed site (the site in force is unchanged); fix the other file nginx -t names"
    fi
    agent site-saved-drop <<<"$P_RAW" >/dev/null
    systemctl reload nginx; log "repaired: the deployed nginx site is in force again"
  fi
  exec 9>&-   # the agent's release-install and activate.sh take the lock themselves
  install=$(result_field install <<<"$plan")
  [ -z "$install" ] || agent release-install <<<"$install" >&2
  if [ "$(result_field activate <<<"$plan")" = True ]; then
    bash "$(dirname "$0")/activate.sh" create <"$APP_ROOT/slots/activation.live.json" >&2
  fi
  with_deploy_lock; report   # settled: not in the middle of another stack's deploy
}

case ${1:-} in
  read) with_deploy_lock; report ;; now) report ;; repair) repair ;;
  *) fail "usage: state.sh read|now|repair" ;;
esac
