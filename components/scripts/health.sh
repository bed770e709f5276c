#!/usr/bin/env bash
# health.sh create — the end-to-end check after a deploy: an HTTP request through nginx on this
# server (port 80, with the site's server name) to the app's health path must answer 2xx within
# the timeout. On failure: the HTTP status, a body excerpt and the service's journal.
# params: APP, HOST_HEADER, HEALTH_PATH, HEALTH_TIMEOUT, SCHEME (optional: "https" checks through
# port 443 with the site's name — port 80 only redirects then; the certificate is tls.sh's concern)
. "$(dirname "$0")/lib.sh"
load_params
[[ $P_HEALTH_PATH =~ ^/[A-Za-z0-9._~/-]*$ ]] || fail "bad health path '$P_HEALTH_PATH'"
[[ $P_HOST_HEADER =~ ^[A-Za-z0-9.-]+$ ]] || fail "bad host name '$P_HOST_HEADER'"
probe=("http://127.0.0.1$P_HEALTH_PATH" -H "Host: $P_HOST_HEADER")
[ "${P_SCHEME:-http}" = https ] && probe=("https://$P_HOST_HEADER$P_HEALTH_PATH" --resolve "$P_HOST_HEADER:443:127.0.0.1" --insecure)
rc=0
result=$(wait_healthy "$P_HEALTH_TIMEOUT" "${probe[@]}") || rc=$?
if [ $rc = 0 ]; then
  echo "healthy through nginx${P_SCHEME:+ ($P_SCHEME)}: HTTP ${result%% *}"
  exit 0
fi
if [ $rc = 2 ]; then
  log "body: ${result#* }"
  fail "GET $P_HEALTH_PATH through nginx answered HTTP ${result%% *} (a client error: no such route?); the health path (flask-deploy:healthPath) must answer 2xx: set it to a route of the app that does"
fi
log "health check through nginx failed: HTTP ${result%% *}; body: ${result#* }"
log "--- last lines of the app's journal ---"
journalctl -u "fdeploy-$P_APP@*" -n 30 --no-pager -o cat >&2 2>/dev/null || true
app_error "fdeploy-$P_APP@*" >&2
fail "GET $P_HEALTH_PATH through nginx did not answer 2xx within ${P_HEALTH_TIMEOUT}s"
