#!/usr/bin/env bash
# deploy-dev.sh — the README's first command: set everything up, boot a local disposable Debian
# server (when the dev stack has no server of its own), deploy the dev stack to it with a real
# `pulumi up`, and print the app's URL.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# the local disposable server's name and address octet (10.213.0.<octet>); overridable so a second
# checkout on the same machine (another engineer, a cold-start measurement) boots its own server
DEV_SERVER=${FDEPLOY_DEV_SERVER:-dev} DEV_OCTET=${FDEPLOY_DEV_OCTET:-10}
bash scripts/setup.sh deploy   # what a deploy needs; the tests' tools come with npm test
# The dev stack's secrets are encrypted in the committed Pulumi.dev.yaml with a documented,
# dev-only passphrase (README "The dev stack"), so this command never rewrites a tracked file. A
# passphrase of your own (PULUMI_CONFIG_PASSPHRASE or _FILE) wins.
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE=flask-deploy-dev-only
fi
. scripts/env.sh
if [ "$FDEPLOY_PULUMI" = official ] && ! pulumi whoami >/dev/null 2>&1; then
  echo "the Pulumi CLI on your PATH has no backend: run 'pulumi login' (e.g. pulumi login --local) first" >&2
  exit 1
fi

pulumi stack select dev 2>/dev/null || pulumi stack init dev
# the Docker plugin only for a dev stack that runs the docker runtime
if [ "$(pulumi config get runtime 2>/dev/null)" = docker ]; then bash toolchain/docker-plugin.sh; fi
if pulumi config get --path server.host >/dev/null 2>&1; then
  :  # the dev stack has a server of its own
elif grep -qx "$DEV_SERVER" <<<"$(bash tests/servers/testserver.sh list)" && [ -f .env ] &&
     grep -qx "FDEPLOY_SERVER_$(bash tests/servers/testserver.sh ssh-config "$DEV_SERVER" | grep '^HOST=')" .env; then
  # the server of the last run is still up: its data and host key stay
  echo "reusing the local disposable server (stop it with: bash tests/servers/testserver.sh down $DEV_SERVER)"
else
  echo
  echo "== local disposable server (the dev stack has no server configured)"
  bash tests/servers/testserver.sh wheelhouse "$ROOT/app/requirements.txt"
  # its disk is kept: a server stopped by a machine restart comes back with its data and host key
  ip=$(FDEPLOY_KEEP_DISK=1 bash tests/servers/testserver.sh up "$DEV_SERVER" "$DEV_OCTET" | tail -n1)
  eval "$(bash tests/servers/testserver.sh ssh-config "$DEV_SERVER")"
  # machine-local settings: git-ignored .env, read by the program with dotenv
  umask 077
  cat >.env <<ENV
FDEPLOY_SERVER_HOST=$ip
FDEPLOY_SERVER_USER=root
FDEPLOY_SERVER_KEY_PATH=$KEY
FDEPLOY_SERVER_HOST_KEY=$(awk -v ip="$ip" '$1 == ip {print $2" "$3}' "$KNOWN_HOSTS")
ENV
  echo "server up at root@$ip (stop it with: bash tests/servers/testserver.sh down $DEV_SERVER; its disk stays until rm-disk $DEV_SERVER)"
fi
if ! pulumi config get --path secrets.SECRET_KEY >/dev/null 2>&1; then
  # (a dev stack configured without one; the committed Pulumi.dev.yaml has one)
  # a fresh random secret, passed on stdin (never a command line)
  head -c 32 /dev/urandom | base64 | tr -d '\n' | pulumi config set --secret --path secrets.SECRET_KEY
fi
echo
echo "== pulumi up --stack dev"
pulumi up --yes --stack dev --skip-preview
echo
echo "The app is live at: $(pulumi stack output url --stack dev)"
