#!/usr/bin/env bash
# setup.sh [deploy|all] — what this project needs on a fresh Debian machine of this kind, idempotent
# (a second run takes seconds): Debian packages, npm dependencies, the Pulumi toolchain and the
# cached image for local test servers. `deploy` (deploy-dev.sh) stops there; `all` (the default:
# test.sh, .ci/run) also builds what only the tests use: the Docker plugin, pebble, Litestream and
# versitygw.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
t0=$SECONDS
profile=${1:-all}
[[ $profile =~ ^(deploy|all)$ ]] || { echo "usage: setup.sh [deploy|all]" >&2; exit 2; }
step() { printf '\n== %s (setup at %ss)\n' "$*" $((SECONDS - t0)); }

step "Debian packages"
need=() pkgs=(debootstrap systemd-container zstd iproute2 openssh-client python3 curl)
# the tests' own: gitlab-ci-local (tests/e2e/ci.test.ts) copies the repository with rsync
[ "$profile" = all ] && pkgs+=(rsync)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "ok"

step "npm dependencies"
# --ignore-scripts: @pulumi/command's install hook would try to download its plugin; the
# toolchain step below provides it.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.fdeploy-lock; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.fdeploy-lock
fi
echo "ok"

step "Pulumi toolchain"
bash toolchain/install.sh

step "test server image"
bash tests/servers/testserver.sh base

if [ "$profile" = all ]; then
  step "Docker plugin (runtime docker)"
  bash toolchain/docker-plugin.sh

  step "pebble (the e2e tests' ACME server)"
  bash toolchain/pebble.sh

  step "Litestream (offsite backups)"
  bash toolchain/litestream.sh
  bash toolchain/versitygw.sh   # the S3-compatible target of the backup e2e
  bash toolchain/ci-tools.sh    # actionlint, act and gitlab-ci-local: the tests of examples/ci/
fi
echo "setup done in $((SECONDS - t0))s"
