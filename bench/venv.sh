#!/usr/bin/env bash
# bench/venv.sh — the benchmarks' Python venv ($BENCH_VENV, default /var/cache/fdeploy/bench-venv):
# ansible-core and matplotlib from PyPI (bench/requirements.txt), rebuilt only when that file or the
# machine's Python changes. Used by bench/run.sh and bench/speed.ts; idempotent.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
VENV=${BENCH_VENV:-/var/cache/fdeploy/bench-venv}
stamp="$(sha256sum "$BENCH/requirements.txt" | cut -c1-16) $(python3 --version 2>&1)"
if [ "$(cat "$VENV/.bench-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$BENCH/requirements.txt"
  echo "$stamp" >"$VENV/.bench-stamp"
fi
echo "ok ($("$VENV/bin/python" -c 'import ansible.release as r, matplotlib as m; print("ansible-core", r.__version__, "| matplotlib", m.__version__)'))"
