#!/usr/bin/env bash
# test.sh — the README's second command: set up what is missing, then run every test:
#   1. Python: the migration runner and the sample app (pytest, real SQLite files)
#   2. TypeScript: type-check (tsc), unit tests (Pulumi mocks): config schema, resource graph, renderers
#   3. Shell: the remote scripts' syntax (bash -n)
#   4. E2E: real `pulumi up` against disposable Debian servers (systemd, sshd, nginx, gunicorn)
# FDEPLOY_E2E=0 skips step 4.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
status=0
LOG=$(mktemp); LOADS=$(mktemp)   # runner output, for the closing count; load samples, for the report
# the run's provenance (scripts/test-run-report.sh): its load average every 60 s, from its start
( while :; do cut -d' ' -f1 /proc/loadavg >>"$LOADS"; sleep 60; done ) & SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null; rm -f "$LOG" "$LOADS"' EXIT
t0=$SECONDS; started=$(date +%s); e2e_secs=0
TIMES=()   # "section seconds", printed at the end
last=""; last_t=0
section() {
  [ -n "$last" ] && TIMES+=("$(printf '%-40s %5ss' "$last" $((SECONDS - last_t)))")
  last=$*; last_t=$SECONDS
  printf '\n==== %s (tests at %ss)\n' "$*" $((SECONDS - t0))
}

section "Python tests (migration runner, sample app)"
bash tests/python/run.sh 2>&1 | tee -a "$LOG" || status=1

section "Scripts: bash -n and shellcheck; no bash on servers; the agent: pyflakes"
glue=(tests/*.sh tests/python/*.sh tests/servers/*.sh scripts/*.sh toolchain/*.sh bench/*.sh .ci/run cli/fdeploy)
for f in "${glue[@]}"; do bash -n "$f" || { echo "syntax error in $f"; status=1; }; done
# the linters are the tests' own (Debian packages), not the deploy's: installed here, not by setup.sh
lint=()
command -v shellcheck >/dev/null || lint+=(shellcheck)
command -v pyflakes3 >/dev/null || lint+=(pyflakes3)
if [ ${#lint[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${lint[@]}" >/dev/null; fi
# the server side is the agent (Python): no bash runs on servers (issue #24); a .sh file that comes
# back into components/scripts/ fails here, and shellcheck (warnings and errors) checks it meanwhile
server_sh=$(find components/scripts -name '*.sh' | sort)
if [ -n "$server_sh" ]; then
  echo "bash in components/scripts/ (the server side is the agent's Python): $server_sh"; status=1
  # shellcheck disable=SC2086
  shellcheck -S warning -x -P components/scripts $server_sh || echo "shellcheck: see above"
fi
# the deploy machine's glue (setup, toolchain, test harness): warnings and errors fail
shellcheck -S warning "${glue[@]}" || { echo "shellcheck: see above"; status=1; }
pyflakes3 components/scripts/*.py components/scripts/agent tests/python || { echo "pyflakes: see above"; status=1; }
echo "ok"

section "Types: tsc --noEmit (pulumi up transpiles without checking: tsconfig.deploy.json)"
npx tsc --noEmit && npx tsc --noEmit -p bench && echo ok || { echo "type errors (above)"; status=1; }

section "Unit tests (mocha, Pulumi mocks)"
# transpile only: the tsc step above has checked these files' types
TS_NODE_TRANSPILE_ONLY=1 npx mocha 'tests/unit/**/*.test.ts' 2>&1 | tee -a "$LOG" || status=1

if [ "${FDEPLOY_E2E:-1}" != 0 ]; then
  section "E2E tests (real pulumi up against test servers)"
  bash tests/servers/testserver.sh wheelhouse app/requirements.txt
  before=$(bash tests/servers/testserver.sh list | sort)
  e2e_t0=$SECONDS
  bash tests/run-e2e.sh 2>&1 | tee -a "$LOG" || status=1
  e2e_secs=$((SECONDS - e2e_t0))
  section "Nothing left behind by the e2e tests"
  after=$(bash tests/servers/testserver.sh list | sort)
  # Only a server the tests added (or started) counts. One that was there before and is gone now is
  # not ours to judge: a killed run's leftover whose name a suite reused (`testserver.sh up` starts
  # clean over it), or a server another process on this machine stopped meanwhile.
  left=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
  gone=$(comm -23 <(echo "$before") <(echo "$after") | tr '\n' ' ')
  [ -n "${gone// /}" ] && echo "(gone since the tests began, not started by them: $gone)"
  if [ -n "${left// /}" ]; then
    echo "test servers left running: $left"; status=1
  elif [ -z "$after" ] && { ip link show fd-br0 >/dev/null 2>&1 || ip netns list | grep -q '^fd-'; }; then
    echo "a bridge or network namespace of the test servers was left behind"; status=1
  else
    echo "ok: no test server, bridge, namespace or mount left"
  fi
fi
section "done"
echo "tests done in $((SECONDS - t0))s; time per part:"
printf '  %s\n' "${TIMES[@]}"
# one closing line over pytest's and mocha's summaries
sed 's/\x1b\[[0-9;]*m//g' "$LOG" | awk '
  / passing \(/ { p += $1 } / failing$/ { f += $1 }
  # pytest summary lines only ("52 passed in 5.57s", "== 1 failed, 51 passed in 6s =="), not e.g.
  # "after 10 failed attempts" in a test'"'"'s output
  /(passed|failed)[^|]* in [0-9.]+s/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  END { printf "tests: %d passed, %d failed\n", p, f }'

# the run's entry for docs/test-runs.md (reports/ is ignored by git; `npm run record:test-run` adds it)
cut -d' ' -f1 /proc/loadavg >>"$LOADS"
mkdir -p reports
bash scripts/test-run-report.sh entry "$LOG" "$started" "$(date +%s)" "$LOADS" "$e2e_secs" $((SECONDS - t0)) >reports/test-run.md
printf '\n==== this run, for docs/test-runs.md (reports/test-run.md; npm run record:test-run adds it)\n'
cat reports/test-run.md

exit $status
