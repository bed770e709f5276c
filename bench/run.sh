#!/usr/bin/env bash
# bench/run.sh [--deploys N] [--rollbacks N] [--only LIST] [--merge] [--worktree] — the downtime benchmark
# (see bench/README.md). Sets up what is missing (idempotent), boots its own test servers
# (bench-rst/-roll/-bg/-ans on 10.213.0.70-73, bench-cnry on .75, ha-tuned on .240; the fleet: bf-app1/-app2/-app3 on
# .236/.237/.239, the balancer bf-lb on .238, the database server bf-db on .246; one target at a time), deploys under load, writes
# bench/results/{raw.json,results.md,chart.png}, and tears every bench server down at the end,
# also on failure or Ctrl-C.
#   --deploys N    deploys per strategy/tool (default 10)
#   --rollbacks N  timed rollbacks per Pulumi strategy (default 3)
#   --only LIST    a subset of restart,rolling,blue-green,canary,ansible,ansible-tuned,fleet, or the Docker runtime's
#                  targets docker-blue-green,docker-rolling (server bench-dkr, 10.213.0.76)
#   --merge        keep the other targets of the existing raw.json in the results folder (re-run one target alone)
#   BENCH_RESULTS=DIR  write the results there (default bench/results; the Docker rows: bench/results/docker)
#   --worktree     benchmark the working tree as it is (default: the committed HEAD)
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
deploys=10 rollbacks=3 only=restart,rolling,blue-green,canary,ansible,ansible-tuned,fleet source=head merge=()
while [ $# -gt 0 ]; do
  case $1 in
    --deploys) deploys=$2; shift 2 ;;
    --rollbacks) rollbacks=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --worktree) source=worktree; shift ;;
    --merge) merge=(--merge); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $deploys =~ ^[0-9]+$ && $deploys -ge 1 && $deploys -le 100 ]] || { echo "--deploys: expected 1..100" >&2; exit 2; }
[[ $rollbacks =~ ^[0-9]+$ && $rollbacks -le 20 ]] || { echo "--rollbacks: expected 0..20" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, systemd-nspawn)" >&2; exit 2; }

WORK=$BENCH/work                         # git-ignored scratch space, rebuilt by every run
RESULTS=${BENCH_RESULTS:-$BENCH/results}
# --merge keeps the other targets of the raw.json this run writes (the Docker rows' own with BENCH_RESULTS)
[ ${#merge[@]} -eq 0 ] || merge+=("$RESULTS/raw.json")
VENV=${BENCH_VENV:-/var/cache/fdeploy/bench-venv}
# the servers of the selected targets only (another run may be using the others)
declare -A SERVER_OF=([restart]=bench-rst [rolling]=bench-roll [blue-green]=bench-bg [canary]=bench-cnry [ansible]=bench-ans [ansible-tuned]=ha-tuned
  [docker-blue-green]=bench-dkr [docker-rolling]=bench-dkr [fleet]="bf-app1 bf-app2 bf-app3 bf-lb bf-db")
SERVERS=()
for t in ${only//,/ }; do
  [ -n "${SERVER_OF[$t]:-}" ] || { echo "--only: unknown target '$t' (expected restart, rolling, blue-green, canary, ansible, ansible-tuned, fleet, docker-blue-green, docker-rolling)" >&2; exit 2; }
  read -ra names <<<"${SERVER_OF[$t]}"
  SERVERS+=("${names[@]}")
done
step() { printf '\n== %s\n' "$*"; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -n "${driver_pid:-}" ] && kill -TERM "$driver_pid" 2>/dev/null && wait "$driver_pid" 2>/dev/null || true
  step "teardown"
  local ts=$WORK/project/tests/servers/testserver.sh
  [ -f "$ts" ] || ts=$ROOT/tests/servers/testserver.sh
  for s in "${SERVERS[@]}"; do
    [ -d "${FDEPLOY_CACHE:-/var/cache/fdeploy}/servers/hosts/$s" ] && bash "$ts" down "$s" || true
  done
  bash "$ts" gc || true                  # the bridge goes only if no other server is left
  rm -rf "$WORK/stacks" "$WORK"/ansible/*/vars.json
  echo "bench servers stopped"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"; mkdir -p "$WORK/project" "$RESULTS"
step "project setup (scripts/setup.sh: packages, npm, Pulumi toolchain, server image)"
bash "$ROOT/scripts/setup.sh" >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; exit 1; }
echo "ok"
. "$ROOT/scripts/env.sh"

step "benchmark venv ($VENV: ansible-core, matplotlib from PyPI)"
bash "$BENCH/venv.sh"

step "snapshot of the project ($source) in bench/work/project"
if [ $source = head ]; then
  git -C "$ROOT" archive HEAD | tar -x -C "$WORK/project"
else
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- . ':!bench' | xargs -0 cp --parents -t "$WORK/project" 2>/dev/null) || true
fi
ln -s "$ROOT/node_modules" "$WORK/project/node_modules"
dirty=$(git -C "$ROOT" status --porcelain -- . ':!bench' | wc -l)
printf '{"mode": "%s", "commit": "%s", "uncommittedFilesOutsideBench": %s}\n' \
  "$source" "$(git -C "$ROOT" rev-parse HEAD)" "$dirty" >"$WORK/source.json"
cat "$WORK/source.json"

step "wheelhouse (the app's requirements and the benchmark's dependency changes)"
mkdir -p "$WORK/deps"   # one file per step: the steps pin different versions of one package
node -r "$ROOT/node_modules/ts-node/register/transpile-only" -e \
  'require(process.argv[1]).DEP_STEPS.forEach((d, i) => require("fs").writeFileSync(`${process.argv[2]}/${i}.txt`, d + "\n"))' \
  "$BENCH/deps.ts" "$WORK/deps"
bash "$WORK/project/tests/servers/testserver.sh" wheelhouse "$WORK/project/app/requirements.txt" "$WORK"/deps/*.txt
echo "ok"

step "benchmark: $deploys deploys per target ($only), $rollbacks rollbacks per Pulumi strategy"
cd "$ROOT"
node -r ts-node/register/transpile-only "$BENCH/bench.ts" --project "$WORK/project" --work "$WORK" \
  --out "$RESULTS/raw.json" --deploys "$deploys" --rollbacks "$rollbacks" --only "$only" "${merge[@]}" &
driver_pid=$!
set +e; wait $driver_pid; bench_status=$?; set -e
driver_pid=

step "report"
"$VENV/bin/python" "$BENCH/report.py" "$RESULTS/raw.json" "$RESULTS"
exit $bench_status
