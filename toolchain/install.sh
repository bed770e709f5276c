#!/usr/bin/env bash
# toolchain/install.sh — make sure the official Pulumi CLI, its Node.js language host and the
# official `command` resource plugin 1.2.1 are at hand, without the official installer (not reachable
# on this project's machines; the `docker` plugin: toolchain/docker-plugin.sh). See toolchain/README.md.
#
# - A `pulumi` already on PATH (a user's machine with the official CLI): nothing is built; the CLI
#   bundles its language host and downloads the command plugin that @pulumi/command asks for.
# - Otherwise (the offline path), into $FDEPLOY_CACHE (outside git), each rebuilt only when its
#   sources or pinned versions change:
#     bin/pulumi                       github.com/pulumi/pulumi/pkg/v3 v3.259.0 from the Go module
#                                      proxy (toolchain/cli/go.mod)
#     bin/pulumi-language-nodejs       the official host v3.259.0, and its dynamic-provider launcher
#     bin/pulumi-resource-pulumi-nodejs   pulumi-resource-pulumi-nodejs, built by
#     upstream/pulumi-resource-command    $FDEPLOY_UPSTREAM_DIR/build.sh from unmodified upstream
#                                      sources (default ../shared/upstream); the plugin is then
#                                      installed into PULUMI_HOME pinned to 1.2.1, as the CLI would.
set -euo pipefail
. "$(dirname "$0")/../scripts/env.sh"
BIN=$FDEPLOY_CACHE/bin
# built outside PATH: a pulumi-resource-command on PATH would override the plugin version pinning
UPSTREAM_OUT=$FDEPLOY_CACHE/upstream
CLI_VERSION=v3.259.0
COMMAND_VERSION=1.2.1

if [ "$FDEPLOY_PULUMI" = official ]; then
  echo "using the Pulumi CLI on PATH: $(command -v pulumi) $(pulumi version)"
  exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build the Pulumi toolchain (apt-get install golang-go, or go.dev)" >&2; exit 1; }
[ -x "$FDEPLOY_UPSTREAM_DIR/build.sh" ] || [ -f "$FDEPLOY_UPSTREAM_DIR/build.sh" ] || {
  echo "FDEPLOY_UPSTREAM_DIR=$FDEPLOY_UPSTREAM_DIR: no build.sh of the official Pulumi sources there" >&2; exit 1; }
mkdir -p "$BIN" "$UPSTREAM_OUT"
# left by earlier versions of this script: our own stand-ins for the host and the plugin
rm -rf "$BIN/pulumi-resource-command" "$FDEPLOY_CACHE/plugin-build"
rm -f "$BIN/.pulumi-language-nodejs.stamp"

# The CLI: rebuilt only when the pinned module set or the version changes.
CLI=$FDEPLOY_ROOT/toolchain/cli
stamp=$(cat "$CLI/go.mod" "$CLI/go.sum" <(echo "$CLI_VERSION") | sha256sum | cut -c1-16)
if [ -x "$BIN/pulumi" ] && [ "$(cat "$BIN/.pulumi.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "pulumi: up to date"
else
  echo "pulumi: building $CLI_VERSION from the Go module proxy (a cold build takes a few minutes)"
  (cd "$CLI" && CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$CLI_VERSION" \
      -o "$BIN/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$BIN/pulumi.tmp" "$BIN/pulumi"; echo "$stamp" >"$BIN/.pulumi.stamp"
fi

# The official host, launcher and command plugin, from their unmodified sources (idempotent).
bash "$FDEPLOY_UPSTREAM_DIR/build.sh" "$UPSTREAM_OUT"
for f in pulumi-language-nodejs pulumi-resource-pulumi-nodejs; do
  cmp -s "$UPSTREAM_OUT/$f" "$BIN/$f" || install -m 0755 "$UPSTREAM_OUT/$f" "$BIN/$f"
done
# pinned to the version @pulumi/command 1.2.1 asks for, in PULUMI_HOME's plugin cache
plugin=$PULUMI_HOME/plugins/resource-command-v$COMMAND_VERSION/pulumi-resource-command
if ! cmp -s "$UPSTREAM_OUT/pulumi-resource-command" "$plugin"; then
  rm -rf "$PULUMI_HOME/plugins/resource-command-v$COMMAND_VERSION"*
  pulumi plugin install resource command "$COMMAND_VERSION" --file "$UPSTREAM_OUT/pulumi-resource-command" >/dev/null
fi

echo "pulumi $(pulumi version) with the official nodejs host and command plugin $COMMAND_VERSION ready in $BIN (PULUMI_HOME=$PULUMI_HOME)"
