#!/usr/bin/env bash
# test.sh — the README's second command: set up what is missing, then run every test:
#   1. Python: the migration runner and the sample app (pytest, real SQLite files)
#   2. TypeScript unit tests (Pulumi mocks): config schema, resource graph, renderers
#   3. Shell: the remote scripts' syntax (bash -n)
#   4. E2E: real `pulumi up` against disposable Debian servers (systemd, sshd, nginx, gunicorn)
# FDEPLOY_E2E=0 skips step 4.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
status=0
t0=$SECONDS
section() { printf '\n==== %s (tests at %ss)\n' "$*" $((SECONDS - t0)); }

section "Python tests (migration runner, sample app)"
bash tests/python/run.sh || status=1

section "Remote scripts: bash -n"
for f in components/scripts/*.sh tests/servers/*.sh scripts/*.sh; do bash -n "$f" || { echo "syntax error in $f"; status=1; }; done
echo "ok"

section "Unit tests (mocha, Pulumi mocks)"
npx mocha 'tests/unit/**/*.test.ts' || status=1

if [ "${FDEPLOY_E2E:-1}" != 0 ]; then
  section "E2E tests (real pulumi up against test servers)"
  bash tests/servers/testserver.sh wheelhouse app/requirements.txt
  npx mocha --require ts-node/register --require tests/e2e/hooks.ts --timeout 900000 'tests/e2e/**/*.test.ts' || status=1
fi
echo "tests done in $((SECONDS - t0))s"
exit $status
