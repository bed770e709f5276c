# env.sh — the one place that sets the Pulumi environment for this project's scripts and tests.
# Source it:  . scripts/env.sh
# - Uses a `pulumi` already on PATH (a real user's machine) unless FDEPLOY_OFFLINE_TOOLCHAIN=1 or
#   none is found; otherwise the toolchain that scripts/install-pulumi.sh built into the cache.
# - State: a local file backend (no account) unless PULUMI_BACKEND_URL is already set.
# - Secrets: the passphrase provider; the passphrase is read from a 0600 file, never a command line.
FDEPLOY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export FDEPLOY_ROOT
export FDEPLOY_CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
if [ "${FDEPLOY_OFFLINE_TOOLCHAIN:-}" = 1 ] || ! command -v pulumi >/dev/null 2>&1 ||
   [ "$(command -v pulumi)" = "$FDEPLOY_CACHE/bin/pulumi" ]; then
  export PATH="$FDEPLOY_CACHE/bin:$PATH"
  # plugins installed by install-pulumi.sh live here, not in ~/.pulumi
  export PULUMI_HOME=${PULUMI_HOME:-$FDEPLOY_CACHE/pulumi-home}
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
fi
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$FDEPLOY_ROOT/.pulumi-state}
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE_FILE=$FDEPLOY_ROOT/.pulumi-passphrase
  if [ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
  fi
fi
mkdir -p "${PULUMI_BACKEND_URL#file://}" 2>/dev/null || true
