"""The release history helpers of lib.sh (rollback_candidates, schema_of_release), run by bash on
crafted history.log files: where a rollback goes and which schema it brings the database to."""
import subprocess

from helpers import ROOT

LIB = ROOT / "components" / "scripts" / "lib.sh"


def history(tmp_path, *lines):
    (tmp_path / "history.log").write_text("".join(f"2026-01-01T00:00:0{i}Z {l}\n" for i, l in enumerate(lines)))


def lib(tmp_path, call):
    script = f'. "{LIB}"; APP_ROOT="{tmp_path}"; {call}'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.split()


A, B, C, D = "a" * 12, "b" * 12, "c" * 12, "d" * 12


def test_a_rollback_steps_back_one_deploy(tmp_path):
    history(tmp_path, f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
            f"{C} live strategy=blue-green schema=3")
    assert lib(tmp_path, "rollback_candidates") == [B, A]


def test_a_second_rollback_steps_further_back_not_forward(tmp_path):
    history(tmp_path, f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
            f"{C} live strategy=restart schema=3", f"{B} live strategy=rollback schema=2")
    assert lib(tmp_path, "rollback_candidates") == [A]


def test_failed_releases_and_settings_only_activations_are_no_candidates(tmp_path):
    history(tmp_path, f"{A} live strategy=restart schema=1", f"{D} failed strategy=restart schema=1",
            f"{B} live strategy=restart schema=1", f"{B} live strategy=restart schema=1",
            f"{D} failed strategy=rolling schema=1")
    assert lib(tmp_path, "rollback_candidates") == [A]


def test_a_deploy_after_a_rollback_goes_on_top_of_it(tmp_path):
    history(tmp_path, f"{A} live strategy=restart schema=1", f"{B} live strategy=restart schema=2",
            f"{A} live strategy=rollback schema=1", f"{C} live strategy=restart schema=3")
    assert lib(tmp_path, "rollback_candidates") == [A]


def test_schema_of_release_is_the_one_it_last_went_live_with(tmp_path):
    history(tmp_path, f"{A} live strategy=restart schema=1", f"{A} failed strategy=restart schema=5",
            f"{B} live strategy=restart schema=2")
    assert lib(tmp_path, f"schema_of_release {A}") == ["1"]
    assert lib(tmp_path, f"schema_of_release {D}") == []
