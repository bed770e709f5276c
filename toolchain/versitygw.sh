#!/usr/bin/env bash
# toolchain/versitygw.sh — build the Versity S3 gateway (Apache-2.0; tests only: the S3-compatible
# target of tests/e2e/backup.test.ts) once per version from the Go module proxy:
#   $FDEPLOY_CACHE/versitygw/<version>/versitygw   github.com/versity/versitygw/cmd/versitygw at the
#                                                  version toolchain/versitygw/go.mod pins
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
MOD=$HERE/versitygw
VERSION=$(sed -n 's/^require github.com\/versity\/versitygw \(v[^ ]*\)$/\1/p' "$MOD/go.mod")
[ -n "$VERSION" ] || { echo "toolchain/versitygw/go.mod pins no versitygw version" >&2; exit 1; }
OUT=$CACHE/versitygw/$VERSION
stamp=$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)
if [ -x "$OUT/versitygw" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "versitygw $VERSION: up to date"; exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build versitygw" >&2; exit 1; }
echo "versitygw: building $VERSION from the Go module proxy (a cold build takes a few minutes)"
mkdir -p "$OUT"
(cd "$MOD" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
    -o "$OUT/.versitygw.tmp" github.com/versity/versitygw/cmd/versitygw)
mv "$OUT/.versitygw.tmp" "$OUT/versitygw"
echo "$stamp" >"$OUT/.stamp"
echo "versitygw $VERSION ready: $OUT/versitygw"
