#!/usr/bin/env bash
# Run the Python tests (migrate.py + sample app) in a cached venv.
# One venv per content of app/requirements.txt, the pytest pin and the python3
# version (its name ends with their digest), so a second run takes seconds, and
# work trees with other requirements never rebuild a venv another run is using.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTEST_PIN="pytest==9.2.0"

stamp_of() {
  { cat "$ROOT/app/requirements.txt"; echo "$PYTEST_PIN"; python3 --version; } | sha256sum | cut -d' ' -f1
}

want="$(stamp_of)"
VENV="${FDEPLOY_PYTEST_VENV:-/var/cache/fdeploy/pytest-venv-${want:0:12}}"
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9  # two runs at once must not build the same venv concurrently
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.fdeploy-stamp" 2>/dev/null)" != "$want" ]; then
  echo "run.sh: building $VENV" >&2
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r "$ROOT/app/requirements.txt" "$PYTEST_PIN"
  echo "$want" >"$VENV/.fdeploy-stamp"  # written last: a failed install is retried
fi
flock -u 9

cd "$ROOT"
# No .pytest_cache or __pycache__ in the work tree.
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
