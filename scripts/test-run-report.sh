#!/usr/bin/env bash
# test-run-report.sh — the provenance entry of one `npm test` run (issue #27), in docs/test-runs.md's
# form. scripts/test.sh calls it at the end of every run and writes the entry to
# reports/test-run.md (ignored by git) and to its output; `npm run record:test-run` puts that entry at
# the top of docs/test-runs.md on purpose (the README quotes only entries of that file).
#   test-run-report.sh entry LOG START END LOADS E2E_SECONDS TOTAL_SECONDS   (stdout: the entry)
#   test-run-report.sh record                                                (reports/ -> docs/)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPORT=$ROOT/reports/test-run.md
DOC=$ROOT/docs/test-runs.md

entry() {
  local log=$1 start=$2 end=$3 loads=$4 e2e=$5 total=$6 commit dirty counts suites
  commit=$(git -C "$ROOT" rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -v '^?? reports/' | head -n 1 || true)
  # one count over pytest's and mocha's summaries (as test.sh's closing line), and pytest's alone
  counts=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
    / passing \(/ { p += $1 } / failing$/ { f += $1 }
    /(passed|failed)[^|]* in [0-9.]+s/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) { p += $i; py += $i } if ($(i+1) ~ /^failed/) f += $i } }
    END { printf "%d passed, %d failed (%d of them pytest)", p, f, py }')
  # run-e2e.sh's closing table: "  name   123s  ok"; the six longest
  suites=$(awk '/^==== e2e suite times/ { on = 1; next } on && NF == 3 && $2 ~ /^[0-9]+s$/ { sub(/s$/, "", $2); print $2, $1 }' "$log" |
    sort -rn | head -n 6 | awk '{ printf "%s%s %s s", (NR > 1 ? ", " : ""), $2, $1 }')
  printf '## %s, %s–%s UTC\n\n' "$commit" "$(date -u -d "@$start" '+%F %H:%M')" "$(date -u -d "@$end" '+%H:%M')"
  printf 'Provenance: commit `%s`%s, `npm test` on %s (%s cores, %s GiB); ' "$commit" \
    "${dirty:+ with uncommitted changes}" "$(hostname)" "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 + 0.5 }' /proc/meminfo)"
  awk -v n="$(wc -l <"$loads")" '{ s += $1; if ($1 > m) m = $1; v[NR] = $1 }
    END { if (NR == 0) { print "load averages not sampled."; exit }
          printf "load average (1 min) %s at its start, %s at its end, mean %.1f and max %s over %d samples (every 60 s).\n", v[1], v[NR], s / NR, m, n }' "$loads"
  printf '\n- tests: %s\n' "$counts"
  if [ "$e2e" -gt 0 ]; then printf -- '- time: %s s, of which e2e %s s\n' "$total" "$e2e"; else printf -- '- time: %s s (no e2e: FDEPLOY_E2E=0)\n' "$total"; fi
  [ -z "$suites" ] || printf -- '- longest suites: %s\n' "$suites"
}

record() {
  [ -f "$REPORT" ] || { echo "error: no $REPORT: run npm test first (it writes the entry there)" >&2; exit 1; }
  local head entry
  entry=$(cat "$REPORT")
  head=$(sed -n '1,/^## /p' "$DOC" | sed '$d')
  if grep -qxF "$(head -n 1 "$REPORT")" "$DOC"; then echo "docs/test-runs.md has this run already"; exit 0; fi
  { printf '%s\n\n' "$head"; printf '%s\n\n' "$entry"; sed -n '/^## /,$p' "$DOC"; } >"$DOC.tmp"
  mv "$DOC.tmp" "$DOC"
  echo "docs/test-runs.md: added $(head -n 1 "$REPORT" | sed 's/^## //')"
}

case ${1:-} in
  entry) shift; entry "$@" ;;
  record) record ;;
  *) echo "usage: $0 entry LOG START END LOADS E2E_SECONDS TOTAL_SECONDS | record" >&2; exit 2 ;;
esac
