#!/usr/bin/env bash
# toolchain/versitygw.sh — the Versity S3 gateway (Apache-2.0; tests only: the S3-compatible target
# of tests/e2e/backup.test.ts), built once per version by go-tool.sh into
# $FDEPLOY_CACHE/versitygw/<version>/versitygw, at the version toolchain/versitygw/go.mod pins.
set -euo pipefail
bash "$(cd "$(dirname "$0")" && pwd)/go-tool.sh" versitygw github.com/versity/versitygw/cmd/versitygw >/dev/null
