#!/usr/bin/env bash
# toolchain/litestream.sh — build Litestream (offsite backups, components/backup.ts) once per
# version from the Go module proxy, like install.sh builds the Pulumi CLI:
#   $FDEPLOY_CACHE/litestream/<version>/litestream   github.com/benbjohnson/litestream/cmd/litestream
#                                                    at the version toolchain/litestream/go.mod pins
# A stack with backup.litestream=upload uploads this binary to its server (offline servers, the
# test servers); `download` (the default) fetches the official release on the server instead.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
MOD=$HERE/litestream
VERSION=$(sed -n 's/^require github.com\/benbjohnson\/litestream \(v[^ ]*\)$/\1/p' "$MOD/go.mod")
[ -n "$VERSION" ] || { echo "toolchain/litestream/go.mod pins no litestream version" >&2; exit 1; }
grep -q "LITESTREAM_VERSION = \"$VERSION\"" "$HERE/../components/config.ts" ||
  { echo "components/config.ts LITESTREAM_VERSION differs from toolchain/litestream/go.mod ($VERSION)" >&2; exit 1; }
OUT=$CACHE/litestream/$VERSION
stamp=$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)
if [ -x "$OUT/litestream" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "litestream $VERSION: up to date"; exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build Litestream (apt-get install golang-go, or go.dev)" >&2; exit 1; }
echo "litestream: building $VERSION from the Go module proxy (a cold build takes a few minutes)"
mkdir -p "$OUT"
(cd "$MOD" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.Version=$VERSION" \
    -o "$OUT/.litestream.tmp" github.com/benbjohnson/litestream/cmd/litestream)
mv "$OUT/.litestream.tmp" "$OUT/litestream"   # the folder holds only the binary: it is uploaded as is
echo "$stamp" >"$OUT/.stamp"
echo "litestream $VERSION ready: $OUT/litestream"
