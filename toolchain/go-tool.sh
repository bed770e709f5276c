#!/usr/bin/env bash
# toolchain/go-tool.sh NAME PACKAGE [LDFLAGS] — build a Go tool once per version from the Go module
# proxy, like install.sh builds the Pulumi CLI: PACKAGE at the version toolchain/NAME/go.mod pins
# (its `require` line; go.sum pins the dependencies), into $FDEPLOY_CACHE/NAME/<version>/NAME.
# The folder holds only the binary (litestream's is uploaded as it is). Prints the binary's path.
set -euo pipefail
NAME=$1 PACKAGE=$2 LDFLAGS=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
MOD=$HERE/$NAME
VERSION=$(awk '$1 == "require" && $3 ~ /^v/ {print $3; exit}' "$MOD/go.mod")
[ -n "$VERSION" ] || { echo "toolchain/$NAME/go.mod pins no version (a 'require <module> vX.Y.Z' line)" >&2; exit 1; }
OUT=${FDEPLOY_CACHE:-/var/cache/fdeploy}/$NAME/$VERSION
stamp=$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)
if [ -x "$OUT/$NAME" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$NAME $VERSION: up to date" >&2; echo "$OUT/$NAME"; exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build $NAME (apt-get install golang-go, or go.dev)" >&2; exit 1; }
echo "$NAME: building $VERSION from the Go module proxy (a cold build takes a few minutes)" >&2
mkdir -p "$OUT"
(cd "$MOD" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $LDFLAGS" \
    -o "$OUT/.$NAME.tmp.$$" "$PACKAGE")
mv "$OUT/.$NAME.tmp.$$" "$OUT/$NAME"   # by rename: a concurrent setup never sees half a file
echo "$stamp" >"$OUT/.stamp"
echo "$NAME $VERSION ready" >&2
echo "$OUT/$NAME"
