#!/usr/bin/env bash
# nginx.sh create|delete — the app's nginx site. The new config is tested with `nginx -t` before
# nginx reloads; if the test fails the previous config is put back and stays in force, and the error
# says whether the new site or another file of nginx's configuration is at fault.
# create params: APP, SITE (the rendered server block; see components/nginx-site.ts)
. "$(dirname "$0")/lib.sh"

create() {
  load_params
  load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
  with_deploy_lock
  # the agent keeps the site the stack wants (site.desired: state.sh compares the site with it, and
  # repairs from it), records the one in force and puts the new one in its place
  local changed site=/etc/nginx/sites-available/fdeploy-$P_APP.conf
  changed=$(agent site-stage --field changed <<<"$P_RAW") || exit 1
  if [ "$changed" != True ]; then
    agent site-saved-drop >/dev/null <<<"$P_RAW"
    echo "nginx site unchanged"; return
  fi
  site_logs "$P_APP"
  ensure_upstream "$P_APP"   # strategy canary's upstream servers (a site of another strategy ignores it)
  if ! out=$(nginx -t 2>&1); then
    agent site-restore >/dev/null <<<"$P_RAW"
    printf '%s\n' "$out" >&2
    # with the previous site back: was it this site, or is nginx's configuration broken elsewhere?
    if nginx -t >/dev/null 2>&1; then
      fail "nginx rejected the new site config (nginx -t); the previous config stays in force"
    fi
    fail "nginx's configuration is invalid apart from this site (nginx -t above names the file); the site was not changed and nginx keeps running its current config"
  fi
  agent site-saved-drop >/dev/null <<<"$P_RAW"
  if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl enable --now --quiet nginx; fi
  echo "nginx site revision: $(sha256sum "$site" | cut -c1-16)"
}

delete() {
  local app=$1
  check_app_name "$app"
  rm -f "/etc/nginx/sites-enabled/fdeploy-$app.conf" "/etc/nginx/sites-available/fdeploy-$app.conf"
  rm -f "$(env_dir "$app")/maintenance.conf"   # fdeploy maintenance: no site, no mode
  rm -f "$(upstream_conf "$app")"               # strategy canary's upstream servers
  nginx -t -q 2>/dev/null && systemctl reload nginx 2>/dev/null || true
  echo "nginx site of $app removed"
}

case ${1:-} in create) create ;; delete) delete "${2:-}" ;; *) fail "usage: nginx.sh create|delete APP" ;; esac
