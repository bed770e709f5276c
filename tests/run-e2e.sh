#!/usr/bin/env bash
# run-e2e.sh — every tests/e2e/*.test.ts file as its own mocha process, FDEPLOY_E2E_JOBS (3) at a
# time: the suites wait on their own test servers, not on the CPU. The longest suites start
# first. Each suite's output is printed whole when it ends, then one line per suite with its time,
# then each failed suite's failures (mocha's "N failing" part) once more.
# Exit status: non-zero if any suite failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
JOBS=${FDEPLOY_E2E_JOBS:-3}
# mocha's ts-node only transpiles: test.sh's `tsc --noEmit` has checked the tests' types already, and a
# type-checking start costs every suite's mocha process seconds of CPU on a machine the suites share
export TS_NODE_TRANSPILE_ONLY=1
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
# longest first (measured), then the rest in name order
order=(reliability backup postgres-backup least-privilege docker deploy strategies any-app https canary upgrade postgres-migrations ops jobs ci fleet fleet-edge fleet-docker migrations postgres package delta-upload two-apps sudo-user official-cli smoke)
files=()
for n in "${order[@]}"; do [ -f "tests/e2e/$n.test.ts" ] && files+=("tests/e2e/$n.test.ts"); done
for f in tests/e2e/*.test.ts; do [[ " ${files[*]} " == *" $f "* ]] || files+=("$f"); done

run_suite() {
  local f=$1 name t0=$SECONDS rc=0
  name=$(basename "$f" .test.ts)
  # --exit: a failed case can leave a timer or poller behind; the root hooks stop the servers first
  npx mocha --exit --require ts-node/register --require tests/e2e/hooks.ts --timeout 900000 "$f" >"$OUT/$name.log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - t0))" >"$OUT/$name.status"
  printf '\n---- e2e suite %s (exit %s, %ss)\n' "$name" "$rc" "$((SECONDS - t0))"
  cat "$OUT/$name.log"
}

running=0
for f in "${files[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  run_suite "$f" &
  running=$((running + 1))
done
wait || true

status=0
printf '\n==== e2e suite times (%s at a time)\n' "$JOBS"
for f in "${files[@]}"; do
  name=$(basename "$f" .test.ts)
  read -r rc secs <"$OUT/$name.status" || { rc=1; secs="?"; }
  printf '  %-14s %5ss  %s\n' "$name" "$secs" "$([ "$rc" = 0 ] && echo ok || echo FAILED)"
  [ "$rc" = 0 ] || status=1
done
# the failures again, last: a CI log shows its tail, and a suite's own output may be far above
for f in "${files[@]}"; do
  name=$(basename "$f" .test.ts)
  read -r rc _ <"$OUT/$name.status" 2>/dev/null && [ "$rc" = 0 ] && continue
  # without mocha's own "N failing" line: scripts/test.sh counts those lines
  printf '\n==== failures of e2e suite %s (%s)\n' "$name" "$(grep -m1 -o '[0-9]* failing' "$OUT/$name.log" || echo 'no mocha summary')"
  sed -n '/^  [0-9]* failing/,$p' "$OUT/$name.log" | tail -n +2 | head -n 80
done
exit $status
