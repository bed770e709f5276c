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
#   repair  puts the deployed settings and site back in force, reinstalls the deployed release from
#           its upload if it was deleted, and, when the app does not run the deployed release,
#           activates it again (activate.sh: health-checked, with fallback)
# Maintenance mode (/etc/fdeploy/<app>/maintenance.conf, ops.sh) is intended state, not drift: the
# site in force includes it as written by the stack, so neither read nor repair looks at it.
# params: APP
. "$(dirname "$0")/lib.sh"
load_params
load_settings "$P_APP" || fail "app '$P_APP' is not deployed on this server"
slots=$APP_ROOT/slots

# the report (the agent's state-report: one JSON object); the fields below are the ServerState's
report() { agent state-report <<<"$P_RAW"; }
field() { agent state-report --field "$1" <<<"$P_RAW"; }

repair() {
  local want restart=0
  with_deploy_lock
  # a unit or environment changed by hand: the app must restart with the deployed one
  # (and a rendered shared file the app replaced: activate.sh links it again)
  [ "$(field unitInForce)" = True ] && [ "$(field envInForce)" = True ] && [ "$(field sharedFilesInForce)" = True ] || restart=1
  settings_from desired
  want=$(env_dir "$P_APP")/site.desired
  if [ "$(field siteInForce)" = False ]; then
    ensure_upstream "$P_APP"
    install -m 0644 "$want" "$(setting_path site)"
    ln -sfn "$(setting_path site)" "/etc/nginx/sites-enabled/fdeploy-$P_APP.conf"
    nginx -t 2>&1 >&2 || fail "nginx rejects its configuration with the deployed site; fix the other file nginx -t names"
    systemctl reload nginx; log "repaired: the deployed nginx site is in force again"
  fi
  exec 9>&-   # release.sh and activate.sh take the lock themselves
  local id; id=$(field deployedRelease)
  if [ -n "$id" ] && [ ! -f "$APP_ROOT/releases/$id/.fdeploy-release.json" ]; then
    [ -d "$FDEPLOY_HOME/uploads/$id" ] || fail "the deployed release $id was deleted from the server, and its upload too; upload it again: pulumi up --target-replace <the URN of release-upload (pulumi stack --show-urns)>"
    log "repairing: the deployed release $id was deleted; installing it again from its upload"
    printf '{"APP": "%s", "RELEASE_ID": "%s", "RUNTIME": "%s"}' "$P_APP" "$id" "$(field deployedRuntime)" | bash "$(dirname "$0")/release.sh" create >&2
  fi
  if [ $restart = 1 ] || [ "$(field release)" != "$id" ] || [ "$(field running)" != True ]; then
    log "repairing: activating the deployed release $id again (live state was: $(report))"
    bash "$(dirname "$0")/activate.sh" create <"$slots/activation.live.json" >&2
  fi
  with_deploy_lock; report   # settled: not in the middle of another stack's deploy
}

case ${1:-} in
  read) with_deploy_lock; report ;; now) report ;; repair) repair ;;
  *) fail "usage: state.sh read|now|repair" ;;
esac
