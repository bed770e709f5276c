#!/usr/bin/env bash
# rollback.sh plan — where a rollback goes (npm run rollback asks over SSH, then pins the answer in
# the stack's `release` setting and runs `pulumi up`, which switches and brings the schema down:
# activate.sh, migrate.sh). Changes nothing. Prints one JSON line (the agent's rollback-plan, from
# the release history): the release to pin, the schema version it ran with, and the live release.
# params: APP, TO (a release id, or "" for one step back through the healthy history)
. "$(dirname "$0")/lib.sh"
load_params
agent rollback-plan <<<"$P_RAW"
