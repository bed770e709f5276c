#!/usr/bin/env bash
# toolchain/pebble.sh — the test ACME server: pebble and pebble-challtestsrv (its DNS server for
# test names), Let's Encrypt's own test server, built from the Go module proxy
# (github.com/letsencrypt/pebble/v2) into $FDEPLOY_CACHE/pebble/<version>/ (outside git), once per
# version; a warm run takes milliseconds. Only the e2e tests use it (tests/servers/pebble.ts).
set -euo pipefail
FDEPLOY_CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
PEBBLE_VERSION=${FDEPLOY_PEBBLE_VERSION:-v2.10.3}
OUT=$FDEPLOY_CACHE/pebble/$PEBBLE_VERSION
if [ -x "$OUT/pebble" ] && [ -x "$OUT/pebble-challtestsrv" ]; then
  echo "pebble $PEBBLE_VERSION: up to date ($OUT)"
  exit 0
fi
if ! command -v go >/dev/null; then
  # deploying needs no pebble: only the https e2e suite does (it names this script when it is missing)
  echo "pebble: skipped, Go is not installed (the https e2e tests need it: apt-get install golang-go, then run $0)" >&2
  exit 0
fi
echo "pebble $PEBBLE_VERSION: building from the Go module proxy"
mkdir -p "$OUT"
tmp=$(mktemp -d "$OUT.build.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
# module mode outside any go.mod: `go install pkg@version` uses exactly the module's own go.sum
(cd "$tmp" && GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" \
   "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION" \
   "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION")
# each binary lands by rename: a concurrent setup never sees half a file
for b in pebble pebble-challtestsrv; do install -m 0755 "$tmp/$b" "$OUT/$b.tmp.$$" && mv -f "$OUT/$b.tmp.$$" "$OUT/$b"; done
echo "pebble $PEBBLE_VERSION ready in $OUT"
