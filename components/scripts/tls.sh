#!/usr/bin/env bash
# tls.sh create|delete|read|repair — the app's HTTPS certificate from an ACME CA, with Debian's certbot.
#   create: installs certbot, the webroot nginx serves challenges from, the renewal deploy hook
#           (nginx -t, then a graceful reload) and, for a private ACME server, its CA bundle; then
#           issues a certificate for the site's names — only when none covers them yet, or the
#           ACME directory changed, or it expired (a re-run is a no-op: no re-issue).
#           Issuance uses HTTP-01 through the app's own nginx site, so nginx never stops: with no
#           certificate yet, an HTTP-only site with the challenge location goes in force first;
#           with one (names added) the HTTPS site keeps serving while the CA validates.
#           If issuance fails the site that was in force before is put back (HTTP, or HTTPS with
#           the old certificate) and the error names each name and the CA's reason.
#           Renewal: certbot's own systemd timer (certbot.timer, twice a day) renews what expires
#           within 30 days; the deploy hook in /etc/letsencrypt/renewal-hooks/deploy/ reloads nginx.
#   delete: after the site stopped using it (tls.mode off, or destroy): the certificate, the
#           webroot and the CA bundle go.
#   read:   (CertificateState, `pulumi refresh`) one JSON object: certificate = valid | missing |
#           expired | names-differ (against the last create's names), notAfter, names
#   repair: (`pulumi up --refresh`) create again with the last create's parameters (kept root-only
#           in /etc/fdeploy/<app>/tls.desired.json): a missing or expired certificate is issued again
#   create with MODE=custom (tls.mode custom): your own chain and key, checked to belong together,
#           kept root-only in /etc/fdeploy/<app>/tls/; no certbot (an ACME certificate of the app is removed).
# create params: APP, MODE ("custom"; absent = acme), CERT and KEY (custom: PEM chain and key, on
#                stdin only), CERT_DIR, CERT_NAME, DOMAINS (space-separated), ACME_SERVER, EMAIL ("" = none),
#                CA_BUNDLE (PEM, "" = the system's CAs), WEBROOT, SITE (the HTTPS site),
#                SITE_ISSUING (the HTTP site with the challenge location; components/nginx-site.ts)
. "$(dirname "$0")/lib.sh"

HOOK=/etc/letsencrypt/renewal-hooks/deploy/fdeploy-nginx-reload
# (certbot.timer renews every app's certificate in one process: a private ACME server's CA reaches
# certbot alone through a certbot.service drop-in: the agent's tls-trust)

reload_nginx() {
  if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl enable --now --quiet nginx; fi
}

# site_in_force CHANGED: after the agent put a site in place (CHANGED: "True" when it did), nginx
# tests and loads it; a rejected config is never left in force (the agent's site-restore)
site_in_force() {
  [ "$1" = True ] || return 0
  site_logs "$P_APP"
  ensure_upstream "$P_APP"
  local out
  if ! out=$(nginx -t 2>&1); then
    restore_site
    printf '%s\n' "$out" >&2
    fail "nginx rejected the site for HTTPS (nginx -t above); the previous site stays in force"
  fi
  reload_nginx
}

# restore_site: the site in force before this run back (the agent recorded it), tested and loaded
restore_site() {
  agent site-restore --field restored <<<"$P_RAW" >/dev/null || true
  if [ -n "${CERTS_BACKUP:-}" ]; then   # custom: the previous certificate files too
    local f; for f in fullchain.pem privkey.pem; do
      if [ -f "$CERTS_BACKUP/$f" ]; then mv -f "$CERTS_BACKUP/$f" "$P_CERT_DIR/$f"; else rm -f "$P_CERT_DIR/$f"; fi
    done
    rm -rf "$CERTS_BACKUP"; CERTS_BACKUP=""
  fi
  if nginx -t -q 2>/dev/null; then reload_nginx; return 0; fi
  # the previous site names a certificate that is gone (deleted by hand): serve HTTP meanwhile
  if [ "${ISSUING:-}" = http ]; then
    log "the previous site's certificate files are missing; the HTTP site stays in force"
    agent tls-fallback >/dev/null <<<"$P_RAW" || true
    nginx -t -q 2>/dev/null && reload_nginx || true
  fi
}

create_custom() {
  with_deploy_lock
  root_dir "$(env_dir "$P_APP")" 0700
  root_dir "$P_CERT_DIR" 0700
  local tmp; tmp=$(mktemp -d "$P_CERT_DIR/.new.XXXXXX")
  (umask 077; printf '%s\n' "$P_CERT" >"$tmp/fullchain.pem"; printf '%s\n' "$P_KEY" >"$tmp/privkey.pem")
  openssl x509 -in "$tmp/fullchain.pem" -noout 2>/dev/null || { rm -rf "$tmp"; fail "tls.certificate is not a PEM certificate"; }
  if [ "$(openssl x509 -in "$tmp/fullchain.pem" -noout -pubkey 2>/dev/null)" != "$(openssl pkey -in "$tmp/privkey.pem" -pubout 2>/dev/null)" ]; then
    rm -rf "$tmp"; fail "tls.privateKey does not belong to the certificate in tls.certificate"
  fi
  CERTS_BACKUP=$(mktemp -d "$P_CERT_DIR/.old.XXXXXX")
  local f changed=0
  for f in fullchain.pem privkey.pem; do
    [ -f "$P_CERT_DIR/$f" ] && cp -p "$P_CERT_DIR/$f" "$CERTS_BACKUP/$f"
    if [ -f "$P_CERT_DIR/$f" ] && cmp -s "$tmp/$f" "$P_CERT_DIR/$f"; then continue; fi
    mv -f "$tmp/$f" "$P_CERT_DIR/$f"; changed=1
  done
  rm -rf "$tmp"
  local site_changed; site_changed=$(agent site-put --field changed <<<"$P_RAW") || { restore_site; exit 1; }
  site_in_force "$site_changed"
  if [ $changed = 1 ]; then   # a new certificate under the same site: test it, then reload
    local out
    if ! out=$(nginx -t 2>&1); then
      restore_site; printf '%s\n' "$out" >&2
      fail "nginx rejected the certificate in tls.certificate (nginx -t above); the previous one stays in force"
    fi
    reload_nginx
  fi
  rm -rf "$CERTS_BACKUP"; CERTS_BACKUP=""
  agent site-saved-drop >/dev/null <<<"$P_RAW"
  agent tls-desired >/dev/null <<<"$P_RAW"
  # an ACME certificate of this app (tls.mode was acme) is no longer used
  if command -v certbot >/dev/null && [ -f "/etc/letsencrypt/renewal/$P_CERT_NAME.conf" ]; then
    certbot delete --non-interactive --cert-name "$P_CERT_NAME" >/dev/null 2>&1 || log "warning: certbot delete --cert-name $P_CERT_NAME failed"
  fi
  echo "certificate (your own) for $P_DOMAINS in force: $(openssl x509 -in "$P_CERT_DIR/fullchain.pem" -noout -serial -enddate | tr '\n' ' ')"
}

create() {
  load_params
  agent tls-check >/dev/null <<<"$P_RAW" || exit 1
  if [ "${P_MODE:-acme}" = custom ]; then create_custom; return; fi
  with_deploy_lock

  if ! command -v certbot >/dev/null; then
    log "installing certbot"
    apt_install certbot
  fi
  install -d -m 0755 -o root -g root /var/lib/fdeploy-acme "$P_WEBROOT"
  agent tls-trust >/dev/null <<<"$P_RAW"
  mkdir -p "$(dirname "$HOOK")"
  cat <<'HOOK' | write_if_changed "$HOOK" 0755 || true
#!/bin/sh
# flask-deploy (tls.sh): a renewed certificate goes live with a graceful reload (no dropped
# connection); a configuration nginx rejects is not loaded.
nginx -t -q && systemctl reload nginx
HOOK
  systemctl enable --now --quiet certbot.timer 2>/dev/null || log "warning: certbot.timer could not be enabled; renewals need it"

  # the agent decides: keep the certificate (same names, directory, still valid), or issue one with
  # the site it put in force meanwhile (HTTPS with the current certificate, or HTTP)
  local plan action args=() ca
  plan=$(agent tls-plan <<<"$P_RAW")
  action=$(result_field action <<<"$plan")
  if [ "$action" = keep ]; then
    echo "certificate $P_CERT_NAME for $(result_field want <<<"$plan"): up to date, notAfter=$(result_field notAfter <<<"$plan")"
    return 0
  fi
  ISSUING=$(result_field issuing <<<"$plan")
  site_in_force "$(result_field changed <<<"$plan")"
  mapfile -t args < <(result_field certbot <<<"$plan")
  ca=$(result_field caBundle <<<"$plan")
  log "requesting a certificate for $(result_field want <<<"$plan") from $P_ACME_SERVER (HTTP-01 through nginx)"
  local out trust=(); out=$(env_dir "$P_APP")/certbot.out
  [ -z "$ca" ] || trust=(env "REQUESTS_CA_BUNDLE=$ca")
  if ! (umask 077; "${trust[@]}" certbot "${args[@]}" >"$out" 2>&1); then
    restore_site
    local failure; failure=$(agent tls-failure <<<"$P_RAW")
    log "$(result_field why <<<"$failure")"
    fail "$(result_field error <<<"$failure")"
  fi
  rm -f "$out"
  local changed; changed=$(agent tls-issued --field changed <<<"$P_RAW") || exit 1
  site_in_force "$changed"
  reload_nginx   # the site may be unchanged (names added): the new certificate still needs a reload
  echo "certificate $P_CERT_NAME for $(result_field want <<<"$plan") issued by $P_ACME_SERVER: $(openssl x509 -in "/etc/letsencrypt/live/$P_CERT_NAME/cert.pem" -noout -serial -enddate | tr '\n' ' ')"
}

# read: the certificate on the server against the names the last create wanted (the agent's JSON)
read_state() {
  load_params
  agent tls-read <<<"$P_RAW"
}

repair() {
  load_params
  local desired; desired=$(agent tls-desired --field raw <<<"$P_RAW") || exit 1
  bash "$0" create <<<"$desired" >&2
  agent tls-read <<<"$P_RAW"
}

delete() {
  local app=$1 forget cert
  check_app_name "$app"
  forget=$(agent tls-forget --app "$app") || exit 1
  if [ "$(result_field kept <<<"$forget")" = True ]; then
    echo "the site of $app still uses the certificate fdeploy-$app; kept"
    return 0
  fi
  cert=$(result_field certbotDelete <<<"$forget")
  if [ -n "$cert" ] && command -v certbot >/dev/null; then
    certbot delete --non-interactive --cert-name "$cert" >/dev/null 2>&1 || log "warning: certbot delete --cert-name $cert failed"
  fi
  echo "HTTPS certificate of $app removed"
}

case ${1:-} in
  create) create ;; delete) delete "${2:-}" ;; read) read_state ;; repair) repair ;;
  *) fail "usage: tls.sh create|delete APP|read|repair" ;;
esac
