"""shell-params: what lib.sh load_params evals. Every value reaches bash as the same bytes (quotes,
$(…), backticks, newlines), nothing in a value runs, and a bad key is refused."""
import json
import os
import subprocess

AGENT = os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent")
HOSTILE = {"APP": "shop", "A": "$(touch /tmp/pwned-fdeploy)", "B": "`id` 'q' \"d\" \\ ;", "C": "line1\nline2", "D": True, "E": 3}


def run_bash(params):
    script = 'decoded=$(python3 -I -B "$1" shell-params --field lines) || exit 9; eval "$decoded"; printf "%s\\0" "$P_A" "$P_B" "$P_C" "$P_D" "$P_E"'
    return subprocess.run(["bash", "-c", script, "bash", AGENT], input=json.dumps(params), capture_output=True, text=True)


def test_values_arrive_byte_for_byte_and_never_run():
    r = run_bash(HOSTILE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\0")[:5] == [HOSTILE["A"], HOSTILE["B"], HOSTILE["C"], "true", "3"]
    assert not os.path.exists("/tmp/pwned-fdeploy")


def test_a_bad_key_is_refused():
    r = run_bash({"APP": "shop", "a; rm -rf /": "x"})
    assert r.returncode == 9 and "bad parameter name" in r.stderr
