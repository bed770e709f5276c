"""The agent's parameter options, so that a unit's command line passes values without building JSON:
--app APP (no stdin read), --set KEY=TEXT (a string, whatever it looks like), --set-json KEY=JSON;
bad ones: usage. The verb "echo" (added here only) gives its parameters back."""
import io
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

import pytest  # noqa: E402

from fdeploy_agent import cli  # noqa: E402


@pytest.fixture(autouse=True)
def echo(monkeypatch):
    monkeypatch.setitem(cli.VERBS, "echo", lambda host, params, log, lock_wait: params)


class NoStdin(io.StringIO):
    def read(self, *a):
        raise AssertionError("stdin read")


def params(argv, stdin):
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(argv, stdin=stdin, stdout=out, stderr=err)
    return status, (json.loads(out.getvalue()) if status == 0 and "--field" not in argv else out.getvalue() or err.getvalue())


def test_app_alone_reads_no_stdin():
    assert params(["echo", "--app", "shop"], NoStdin()) == (0, {"APP": "shop", "ok": True})


def test_set_is_a_string_and_set_json_any_value_added_to_stdin():
    status, r = params(["echo", "--set", "RELEASE_ID=123456789012", "--set", "MSG=a \"quoted\" = b",
                        "--set-json", "SECONDS=12", "--set-json", "CONSOLE=true"], io.StringIO('{"APP": "shop"}'))
    assert status == 0 and r == {"APP": "shop", "RELEASE_ID": "123456789012", "MSG": 'a "quoted" = b', "SECONDS": 12, "CONSOLE": True, "ok": True}
    assert params(["echo", "--app", "shop", "--set", "SLOT=release-cmd", "--field", "SLOT"], NoStdin()) == (0, "release-cmd\n")


def test_bad_options_are_a_usage_error():
    for argv in (["echo", "--set", "NOEQUALS"], ["echo", "--set-json", "X={bad"], ["echo", "--app"],
                 ["echo", "--other", "x"], ["echo", "--set", "=x"]):
        status, err = params(argv, io.StringIO("{}"))
        assert status == 2 and "usage: fdeploy-agent VERB" in err, argv
