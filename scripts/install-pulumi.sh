#!/usr/bin/env bash
# install-pulumi.sh — make sure a Pulumi CLI, a Node.js language host and the `command` resource
# plugin 1.2.1 are available, without the official installer (unreachable here).
#
# - A `pulumi` already on PATH (a real user's machine with the official CLI): nothing to build;
#   `npm ci` + the CLI's own plugin download provide the command plugin.
# - Otherwise: build from Go modules through the Go module proxy into $FDEPLOY_CACHE/bin
#   (outside git), then install the command plugin into the project-local PULUMI_HOME.
#   Idempotent: each binary is rebuilt only when its sources or pinned versions change.
#
# What is built, and why (see README "Offline toolchain"):
#   pulumi                   github.com/pulumi/pulumi/pkg/v3 v3.259.0 (scripts/toolchain/go.mod)
#   pulumi-language-nodejs   our small host (scripts/toolchain/nodejs-host): the official host's
#                            module is not served by the proxy (403 for every version)
#   pulumi-resource-command  our wire-compatible provider (scripts/toolchain/command-provider):
#                            github.com/pulumi/pulumi-command is not served (403)
set -euo pipefail
. "$(dirname "$0")/env.sh"
BIN=$FDEPLOY_CACHE/bin
# Plugins are built outside PATH: a pulumi-resource-* on PATH would override version pinning.
PLUGIN_BUILD=$FDEPLOY_CACHE/plugin-build
TC=$FDEPLOY_ROOT/scripts/toolchain
CLI_VERSION=v3.259.0
COMMAND_VERSION=1.2.1

if [ "${FDEPLOY_OFFLINE_TOOLCHAIN:-}" != 1 ] && command -v pulumi >/dev/null 2>&1 &&
   [ "$(command -v pulumi)" != "$BIN/pulumi" ]; then
  echo "using the Pulumi CLI on PATH: $(command -v pulumi) $(pulumi version)"
  exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build the Pulumi toolchain (apt-get install golang-go, or go.dev)" >&2; exit 1; }
mkdir -p "$BIN" "$PLUGIN_BUILD"
rm -f "$BIN/pulumi-resource-command"   # from older versions of this script

# build DIR NAME PACKAGE LDFLAGS: rebuild only if the stamp (versions + source hash) changed
build() {
  local BIN=$1; shift
  local name=$1 pkg=$2 ldflags=$3 stamp
  stamp=$(cat "$TC/go.mod" "$TC/go.sum" <(echo "$ldflags") $(find "$TC/${pkg#./}" -name '*.go' 2>/dev/null | sort) 2>/dev/null | sha256sum | cut -c1-16)
  if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "$name: up to date"; return
  fi
  echo "$name: building (a cold build takes a few minutes)"
  (cd "$TC" && CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace -ldflags "-s -w $ldflags" \
      -o "$BIN/$name.tmp" "$pkg")
  mv "$BIN/$name.tmp" "$BIN/$name"; echo "$stamp" >"$BIN/.$name.stamp"
}
build "$BIN" pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$CLI_VERSION"
build "$BIN" pulumi-language-nodejs ./nodejs-host "-X main.version=${CLI_VERSION#v}"
build "$PLUGIN_BUILD" pulumi-resource-command ./command-provider "-X main.version=$COMMAND_VERSION"

# The plugin goes into PULUMI_HOME's plugin cache, pinned to the version @pulumi/command asks for.
if ! cmp -s "$PLUGIN_BUILD/pulumi-resource-command" "$PULUMI_HOME/plugins/resource-command-v$COMMAND_VERSION/pulumi-resource-command"; then
  rm -rf "$PULUMI_HOME/plugins/resource-command-v$COMMAND_VERSION"*
  pulumi plugin install resource command "$COMMAND_VERSION" --file "$PLUGIN_BUILD/pulumi-resource-command" >/dev/null
fi
echo "pulumi $(pulumi version) ready in $BIN (PULUMI_HOME=$PULUMI_HOME)"
