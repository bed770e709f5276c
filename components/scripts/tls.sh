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
# certbot.timer runs `certbot renew` for every certificate on the server in one process: a private
# ACME server's CA is added for certbot alone (never to the system's trust store) by a drop-in
# that points REQUESTS_CA_BUNDLE at the system CAs plus every app's acme-ca.pem.
RENEW_BUNDLE=/etc/fdeploy/acme-ca-bundle.pem
DROPIN=/etc/systemd/system/certbot.service.d/fdeploy-acme-ca.conf

site_path() { echo "/etc/nginx/sites-available/fdeploy-$1.conf"; }
enabled_path() { echo "/etc/nginx/sites-enabled/fdeploy-$1.conf"; }

reload_nginx() {
  if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl enable --now --quiet nginx; fi
}

# renewal_trust: the certbot.service drop-in and bundle, from the acme-ca.pem files of all apps
renewal_trust() {
  local cas=() f changed=0
  for f in /etc/fdeploy/*/acme-ca.pem; do [ -f "$f" ] && cas+=("$f"); done
  if [ ${#cas[@]} -gt 0 ]; then
    cat /etc/ssl/certs/ca-certificates.crt "${cas[@]}" | write_if_changed "$RENEW_BUNDLE" 0644 || true
    mkdir -p "$(dirname "$DROPIN")"
    printf '# flask-deploy (tls.sh): CAs of private ACME servers, for certbot renew only\n[Service]\nEnvironment=REQUESTS_CA_BUNDLE=%s\n' "$RENEW_BUNDLE" |
      write_if_changed "$DROPIN" 0644 && changed=1
  else
    [ -f "$DROPIN" ] && { rm -f "$DROPIN"; changed=1; }
    rm -f "$RENEW_BUNDLE"
  fi
  [ $changed = 0 ] || systemctl daemon-reload
}

# the site's log files exist (0640, root and adm only) before nginx opens them (as nginx.sh does)
site_logs() {
  local f
  for f in "/var/log/nginx/fdeploy-$1.access.log" "/var/log/nginx/fdeploy-$1.error.log"; do
    [ -e "$f" ] || install -m 0640 -o www-data -g adm /dev/null "$f"
    [ -L "$f" ] || chmod 0640 "$f"
  done
}

# put_site CONTENT: the app's site in force (nginx -t first); a rejected config is never left in force
put_site() {
  local site enabled out
  site=$(site_path "$P_APP"); enabled=$(enabled_path "$P_APP")
  if ! printf '%s\n' "$1" | write_if_changed "$site" 0644 && [ -L "$enabled" ]; then return 0; fi
  site_logs "$P_APP"
  ensure_upstream "$P_APP"
  ln -sfn "$site" "$enabled"
  if ! out=$(nginx -t 2>&1); then
    restore_site
    printf '%s\n' "$out" >&2
    fail "nginx rejected the site for HTTPS (nginx -t above); the previous site stays in force"
  fi
  reload_nginx
}

# the site in force before this run, put back when issuance fails
SAVED=""
save_site() {
  SAVED=$(mktemp); local site; site=$(site_path "$P_APP")
  if [ -f "$site" ] && [ -L "$(enabled_path "$P_APP")" ]; then cp -p "$site" "$SAVED"; else rm -f "$SAVED"; SAVED=none; fi
}
restore_site() {
  [ -n "$SAVED" ] || return 0
  if [ "$SAVED" = none ]; then
    rm -f "$(enabled_path "$P_APP")" "$(site_path "$P_APP")"
  else
    mv -f "$SAVED" "$(site_path "$P_APP")"; ln -sfn "$(site_path "$P_APP")" "$(enabled_path "$P_APP")"
  fi
  SAVED=""
  if [ -n "${CERTS_BACKUP:-}" ]; then   # custom: the previous certificate files too
    local f; for f in fullchain.pem privkey.pem; do
      if [ -f "$CERTS_BACKUP/$f" ]; then mv -f "$CERTS_BACKUP/$f" "$P_CERT_DIR/$f"; else rm -f "$P_CERT_DIR/$f"; fi
    done
    rm -rf "$CERTS_BACKUP"; CERTS_BACKUP=""
  fi
  if nginx -t -q 2>/dev/null; then reload_nginx; return 0; fi
  # the previous site names a certificate that is gone (deleted by hand): serve HTTP meanwhile
  if [ -n "${ISSUING_SITE:-}" ]; then
    log "the previous site's certificate files are missing; the HTTP site stays in force"
    printf '%s\n' "$ISSUING_SITE" | write_if_changed "$(site_path "$P_APP")" 0644 || true
    nginx -t -q 2>/dev/null && reload_nginx || true
  fi
}

# cert_names FILE: the DNS names a certificate covers, sorted, one line
cert_names() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tr ',' '\n' | sed -n 's/^ *DNS://p' | sort | tr '\n' ' ' | sed 's/ $//'
}

# what the last successful create deployed, for read and repair (a failed create is not kept: the
# stack's state keeps the previous parameters too)
keep_desired() { printf '%s' "$P_RAW" | write_if_changed "$(env_dir "$P_APP")/tls.desired.json" 0600 || true; }

create_custom() {
  [ "$P_CERT_DIR" = "$(env_dir "$P_APP")/tls" ] || fail "bad certificate folder '$P_CERT_DIR'"
  with_deploy_lock
  root_dir "$(env_dir "$P_APP")" 0700
  root_dir "$P_CERT_DIR" 0700
  local tmp; tmp=$(mktemp -d "$P_CERT_DIR/.new.XXXXXX")
  (umask 077; printf '%s\n' "$P_CERT" >"$tmp/fullchain.pem"; printf '%s\n' "$P_KEY" >"$tmp/privkey.pem")
  openssl x509 -in "$tmp/fullchain.pem" -noout 2>/dev/null || { rm -rf "$tmp"; fail "tls.certificate is not a PEM certificate"; }
  if [ "$(openssl x509 -in "$tmp/fullchain.pem" -noout -pubkey 2>/dev/null)" != "$(openssl pkey -in "$tmp/privkey.pem" -pubout 2>/dev/null)" ]; then
    rm -rf "$tmp"; fail "tls.privateKey does not belong to the certificate in tls.certificate"
  fi
  save_site
  CERTS_BACKUP=$(mktemp -d "$P_CERT_DIR/.old.XXXXXX")
  local f changed=0
  for f in fullchain.pem privkey.pem; do
    [ -f "$P_CERT_DIR/$f" ] && cp -p "$P_CERT_DIR/$f" "$CERTS_BACKUP/$f"
    if [ -f "$P_CERT_DIR/$f" ] && cmp -s "$tmp/$f" "$P_CERT_DIR/$f"; then continue; fi
    mv -f "$tmp/$f" "$P_CERT_DIR/$f"; changed=1
  done
  rm -rf "$tmp"
  put_site "$P_SITE"
  if [ $changed = 1 ]; then   # a new certificate under the same site: test it, then reload
    local out
    if ! out=$(nginx -t 2>&1); then
      restore_site; printf '%s\n' "$out" >&2
      fail "nginx rejected the certificate in tls.certificate (nginx -t above); the previous one stays in force"
    fi
    reload_nginx
  fi
  rm -rf "$CERTS_BACKUP"; CERTS_BACKUP=""; rm -f "$SAVED"; SAVED=""
  keep_desired
  # an ACME certificate of this app (tls.mode was acme) is no longer used
  if command -v certbot >/dev/null && [ -f "/etc/letsencrypt/renewal/$P_CERT_NAME.conf" ]; then
    certbot delete --non-interactive --cert-name "$P_CERT_NAME" >/dev/null 2>&1 || log "warning: certbot delete --cert-name $P_CERT_NAME failed"
  fi
  echo "certificate (your own) for $P_DOMAINS in force: $(openssl x509 -in "$P_CERT_DIR/fullchain.pem" -noout -serial -enddate | tr '\n' ' ')"
}

create() {
  load_params
  load_settings "$P_APP" || fail "app '$P_APP' has no base system yet (base.sh create)"
  if [ "${P_MODE:-acme}" = custom ]; then create_custom; return; fi
  [ "$P_CERT_NAME" = "fdeploy-$P_APP" ] || fail "bad certificate name '$P_CERT_NAME'"
  [ "$P_WEBROOT" = "/var/lib/fdeploy-acme/$P_APP" ] || fail "bad webroot '$P_WEBROOT'"
  [[ $P_ACME_SERVER =~ ^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]] || fail "bad ACME directory URL '$P_ACME_SERVER'"
  [ -z "$P_EMAIL" ] || [[ $P_EMAIL =~ ^[^[:space:]@\'\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$ ]] || fail "bad e-mail address '$P_EMAIL'"
  local d domains=()
  for d in $P_DOMAINS; do
    [[ $d =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ && $d == *.* ]] || fail "bad domain name '$d'"
    domains+=("$d")
  done
  [ ${#domains[@]} -gt 0 ] || fail "no domain names for the certificate"
  with_deploy_lock

  if ! command -v certbot >/dev/null; then
    log "installing certbot"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends certbot >/dev/null
  fi
  install -d -m 0755 -o root -g root /var/lib/fdeploy-acme "$P_WEBROOT"
  root_dir "$(env_dir "$P_APP")" 0700
  local ca; ca=$(env_dir "$P_APP")/acme-ca.pem
  if [ -n "$P_CA_BUNDLE" ]; then printf '%s\n' "$P_CA_BUNDLE" | write_if_changed "$ca" 0644 || true; else rm -f "$ca"; fi
  renewal_trust
  mkdir -p "$(dirname "$HOOK")"
  cat <<'HOOK' | write_if_changed "$HOOK" 0755 || true
#!/bin/sh
# flask-deploy (tls.sh): a renewed certificate goes live with a graceful reload (no dropped
# connection); a configuration nginx rejects is not loaded.
nginx -t -q && systemctl reload nginx
HOOK
  systemctl enable --now --quiet certbot.timer 2>/dev/null || log "warning: certbot.timer could not be enabled; renewals need it"

  # a certificate that covers exactly these names, from this ACME directory, still valid: nothing to do
  local live=/etc/letsencrypt/live/$P_CERT_NAME conf=/etc/letsencrypt/renewal/$P_CERT_NAME.conf
  local want have="" server="" force=()
  want=$(printf '%s\n' "${domains[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//')
  if [ -f "$live/cert.pem" ] && [ -f "$conf" ]; then
    have=$(cert_names "$live/cert.pem")
    server=$(sed -n 's/^server = //p' "$conf")
    if [ "$have" = "$want" ] && [ "$server" = "$P_ACME_SERVER" ] && openssl x509 -in "$live/cert.pem" -noout -checkend 0 >/dev/null; then
      echo "certificate $P_CERT_NAME for $want: up to date, $(openssl x509 -in "$live/cert.pem" -noout -enddate)"
      keep_desired
      return 0
    fi
    # same names from another directory, or an expired one: certbot would keep it unless forced
    [ "$have" = "$want" ] && force=(--force-renewal)
  fi

  save_site
  local own; own=$(env_dir "$P_APP")/tls
  if [ -f "$live/fullchain.pem" ]; then
    put_site "$P_SITE"
  elif [ -f "$own/fullchain.pem" ] && [ -f "$own/privkey.pem" ]; then
    # from tls.mode custom: HTTPS goes on with that certificate while the CA validates
    put_site "${P_SITE//"/etc/letsencrypt/live/$P_CERT_NAME/"/"$own/"}"
  else
    ISSUING_SITE=$P_SITE_ISSUING; put_site "$P_SITE_ISSUING"
  fi
  local args=(certonly --non-interactive --agree-tos --no-eff-email --cert-name "$P_CERT_NAME"
              --server "$P_ACME_SERVER" --webroot --webroot-path "$P_WEBROOT" --key-type ecdsa "${force[@]}")
  if [ -n "$P_EMAIL" ]; then args+=(--email "$P_EMAIL"); else args+=(--register-unsafely-without-email); fi
  for d in "${domains[@]}"; do args+=(-d "$d"); done
  log "requesting a certificate for $want from $P_ACME_SERVER (HTTP-01 through nginx)"
  local out rc=0
  if [ -f "$ca" ]; then
    out=$(REQUESTS_CA_BUNDLE=$ca certbot "${args[@]}" 2>&1) || rc=$?
  else
    out=$(certbot "${args[@]}" 2>&1) || rc=$?
  fi
  if [ $rc != 0 ]; then
    restore_site
    local why refused
    why=$(printf '%s\n' "$out" | grep -E '^ *(Domain|Type|Detail|Hint):|Error|error' | grep -v 'letsencrypt.log' | head -n 20 || true)
    log "${why:-$(printf '%s\n' "$out" | tail -n 15)}"
    # "name (reason)" for each name the CA refused, from certbot's Domain:/Detail: lines
    refused=$(printf '%s\n' "$out" | awk '/^ *Domain:/ {d=$2} /^ *Detail:/ && d {sub(/^ *Detail: */, ""); printf "%s%s (%s)", sep, d, substr($0, 1, 160); sep="; "; d=""}')
    fail "no certificate for $want from $P_ACME_SERVER: ${refused:-certbot exit $rc, see above} (details in /var/log/letsencrypt/letsencrypt.log). The site that was in force before stays in force$([ -f "$live/fullchain.pem" ] && echo " with the previous certificate ($have)" || echo " (HTTP)")."
  fi
  rm -f "$SAVED"; SAVED=""
  put_site "$P_SITE"
  reload_nginx   # the site may be unchanged (names added): the new certificate still needs a reload
  keep_desired
  rm -rf "$(env_dir "$P_APP")/tls"   # a certificate of your own from tls.mode custom, no longer used
  echo "certificate $P_CERT_NAME for $want issued by $P_ACME_SERVER: $(openssl x509 -in "$live/cert.pem" -noout -serial -enddate | tr '\n' ' ')"
}

# read: the certificate on the server against the names the last create wanted
read_state() {
  load_params
  local desired live state=valid names="" not_after="" want=""
  desired=$(env_dir "$P_APP")/tls.desired.json
  live=/etc/letsencrypt/live/fdeploy-$P_APP/cert.pem
  [ -f "$desired" ] && want=$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["DOMAINS"].split())))' "$desired")
  if [ -f "$desired" ] && grep -q '"MODE": *"custom"' "$desired"; then
    live=$(env_dir "$P_APP")/tls/fullchain.pem; want=""   # your own: its names are checked at preview
  fi
  if [ ! -f "$live" ]; then
    state=missing
  else
    names=$(cert_names "$live")
    not_after=$(openssl x509 -in "$live" -noout -enddate | sed 's/^notAfter=//')
    if ! openssl x509 -in "$live" -noout -checkend 0 >/dev/null; then state=expired
    elif [ -n "$want" ] && [ "$names" != "$want" ]; then state="names-differ"
    fi
  fi
  printf '{"certificate": "%s", "notAfter": "%s", "names": "%s"}\n' "$state" "$not_after" "$names"
}

repair() {
  load_params
  local desired; desired=$(env_dir "$P_APP")/tls.desired.json
  [ -f "$desired" ] || fail "no HTTPS certificate was deployed for '$P_APP' on this server (tls.sh create never ran)"
  bash "$0" create <"$desired" >&2
  printf '{"APP": "%s"}' "$P_APP" | read_state
}

delete() {
  local app=$1 cert
  check_app_name "$app"
  cert=fdeploy-$app
  if [ -f "$(site_path "$app")" ] && grep -qE "(/etc/letsencrypt/live/$cert|/etc/fdeploy/$app/tls)/" "$(site_path "$app")"; then
    echo "the site of $app still uses the certificate $cert; kept"
    return 0
  fi
  if command -v certbot >/dev/null && [ -f "/etc/letsencrypt/renewal/$cert.conf" ]; then
    certbot delete --non-interactive --cert-name "$cert" >/dev/null 2>&1 || log "warning: certbot delete --cert-name $cert failed"
  fi
  rm -rf "/var/lib/fdeploy-acme/$app"
  rm -rf "$(env_dir "$app")/acme-ca.pem" "$(env_dir "$app")/tls.desired.json" "$(env_dir "$app")/tls"
  renewal_trust
  echo "HTTPS certificate of $app removed"
}

case ${1:-} in
  create) create ;; delete) delete "${2:-}" ;; read) read_state ;; repair) repair ;;
  *) fail "usage: tls.sh create|delete APP|read|repair" ;;
esac
