#!/usr/bin/env bash
# toolchain/litestream.sh — Litestream (offsite backups, components/backup.ts), built once per
# version by go-tool.sh into $FDEPLOY_CACHE/litestream/<version>/litestream, at the version
# toolchain/litestream/go.mod pins (which components/config/schema.ts LITESTREAM_VERSION must name).
# A stack with backup.litestream=upload uploads this binary to its server (offline servers, the
# test servers); `download` (the default) fetches the official release on the server instead.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=$(sed -n 's/^require github.com\/benbjohnson\/litestream \(v[^ ]*\)$/\1/p' "$HERE/litestream/go.mod")
grep -q "LITESTREAM_VERSION = \"$VERSION\"" "$HERE/../components/config/schema.ts" ||
  { echo "components/config/schema.ts LITESTREAM_VERSION differs from toolchain/litestream/go.mod ($VERSION)" >&2; exit 1; }
bash "$HERE/go-tool.sh" litestream github.com/benbjohnson/litestream/cmd/litestream "-X main.Version=$VERSION" >/dev/null
