#!/usr/bin/env bash
# toolchain/docker-plugin.sh — the official Docker resource plugin, for stacks with `runtime: docker`
# (README "Docker runtime") and the tests: pulumi-docker/<version>/pulumi-resource-docker in
# $FDEPLOY_CACHE, built once per version by $FDEPLOY_UPSTREAM_DIR/pulumi-docker/build.sh at the version
# package.json pins for @pulumi/docker, and installed into PULUMI_HOME pinned to it. A `pulumi` on
# PATH (the official CLI) downloads the plugin itself: nothing to do. A python-runtime deploy needs
# none of it (npm run deploy:dev builds it only for a docker dev stack).
set -euo pipefail
. "$(dirname "$0")/../scripts/env.sh"
if [ "$FDEPLOY_PULUMI" = official ]; then exit 0; fi
# The official Docker plugin, at the version package.json pins for @pulumi/docker (its SDK asks for
# exactly that plugin), built once per version outside PATH and installed pinned like the command plugin.
DOCKER_VERSION=$(node -p 'require(process.argv[1]).dependencies["@pulumi/docker"]' "$FDEPLOY_ROOT/package.json")
[[ $DOCKER_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "package.json pins no exact @pulumi/docker version ($DOCKER_VERSION)" >&2; exit 1; }
DOCKER_BUILD=$FDEPLOY_UPSTREAM_DIR/pulumi-docker/build.sh
grep -q "^VERSION=$DOCKER_VERSION\$" "$DOCKER_BUILD" 2>/dev/null ||
  { echo "$DOCKER_BUILD does not build pulumi-resource-docker $DOCKER_VERSION (the version package.json pins for @pulumi/docker)" >&2; exit 1; }
DOCKER_OUT=$FDEPLOY_CACHE/pulumi-docker/$DOCKER_VERSION
bash "$DOCKER_BUILD" "$DOCKER_OUT"
plugin=$PULUMI_HOME/plugins/resource-docker-v$DOCKER_VERSION/pulumi-resource-docker
if ! cmp -s "$DOCKER_OUT/pulumi-resource-docker" "$plugin"; then
  rm -rf "$PULUMI_HOME/plugins/resource-docker-v$DOCKER_VERSION"*
  pulumi plugin install resource docker "$DOCKER_VERSION" --file "$DOCKER_OUT/pulumi-resource-docker" >/dev/null
fi
echo "docker plugin $DOCKER_VERSION ready (PULUMI_HOME=$PULUMI_HOME)"
