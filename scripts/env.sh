# shellcheck shell=bash
# env.sh — the one place that sets the Pulumi environment for this project's scripts and tests.
# Source it:  . scripts/env.sh
#
# Official path — a `pulumi` on PATH that is not ours (a user's machine): nothing is changed. The
#   user's `pulumi login` backend, PULUMI_HOME and secrets provider are used as they are.
# Offline path — no `pulumi` on PATH, or FDEPLOY_OFFLINE_TOOLCHAIN=1 (this project's machines): the
#   toolchain that toolchain/install.sh built from official sources into $FDEPLOY_CACHE, and
#   defaults only where the user set nothing:
#   - plugins in $FDEPLOY_CACHE/pulumi-home unless PULUMI_HOME is set;
#   - state in a local file backend (.pulumi-state/, git-ignored) unless PULUMI_BACKEND_URL is set
#     or the user ran `pulumi login` (PULUMI_HOME/credentials.json names a current backend);
#   - the passphrase in .pulumi-passphrase (0600, git-ignored) unless PULUMI_CONFIG_PASSPHRASE or
#     PULUMI_CONFIG_PASSPHRASE_FILE is set. The passphrase never goes on a command line.
FDEPLOY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export FDEPLOY_ROOT
export FDEPLOY_CACHE=${FDEPLOY_CACHE:-/var/cache/fdeploy}
# the unmodified upstream sources of the host and the command plugin (toolchain/README.md)
export FDEPLOY_UPSTREAM_DIR=${FDEPLOY_UPSTREAM_DIR:-$(cd "$FDEPLOY_ROOT/.." && pwd)/shared/upstream}
if [ "${FDEPLOY_OFFLINE_TOOLCHAIN:-}" != 1 ] && command -v pulumi >/dev/null 2>&1 &&
   [ "$(command -v pulumi)" != "$FDEPLOY_CACHE/bin/pulumi" ]; then
  export FDEPLOY_PULUMI=official
else
  export FDEPLOY_PULUMI=offline
  export PATH="$FDEPLOY_CACHE/bin:$PATH"
  export PULUMI_HOME=${PULUMI_HOME:-$FDEPLOY_CACHE/pulumi-home}
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true   # no plugin downloads here
  export PULUMI_SKIP_UPDATE_CHECK=true
  if [ -z "${PULUMI_BACKEND_URL:-}" ] &&
     ! grep -qs '"current": *"[^"]' "$PULUMI_HOME/credentials.json"; then
    export PULUMI_BACKEND_URL=file://$FDEPLOY_ROOT/.pulumi-state
    mkdir -p "$FDEPLOY_ROOT/.pulumi-state"
  fi
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    export PULUMI_CONFIG_PASSPHRASE_FILE=$FDEPLOY_ROOT/.pulumi-passphrase
    if [ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then
      (umask 077; head -c 32 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
    fi
  fi
fi
