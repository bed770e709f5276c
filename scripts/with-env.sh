#!/usr/bin/env bash
# with-env.sh CMD… — run a command with this project's Pulumi environment (scripts/env.sh).
. "$(dirname "$0")/env.sh"
cd "$FDEPLOY_ROOT" || exit
exec "$@"
