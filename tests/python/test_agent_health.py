"""The health check through nginx after a deploy (agent health.py): 2xx passes, a 4xx fails at
once naming healthPath, anything else is retried until the timeout, then fails with the journal.
curl and journalctl replaced at the Host seam; time is a fake clock."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, health  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

PARAMS = {"APP": "shop", "HOST_HEADER": "shop.example", "HEALTH_PATH": "/health", "HEALTH_TIMEOUT": 10}


class Fake:
    def __init__(self, *answers):
        self.answers, self.now, self.logs = list(answers), 0.0, []

    def run(self, argv, merge_output=False, input=None):
        if argv[0] == "journalctl":
            return subprocess.CompletedProcess(argv, 0, "boot\nRuntimeError: no database\n", "")
        out = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return subprocess.CompletedProcess(argv, 0, out, "")

    def check(self, **params):
        self.host = Host(root="/nonexistent", run=self.run)
        return health.health(self.host, dict(PARAMS, **params), self.logs.append, 0, clock=lambda: self.now,
                             sleep=lambda s: setattr(self, "now", self.now + s))


def test_2xx_passes_through_nginx_with_the_sites_name():
    f = Fake("ok\n200")
    assert f.check() == {"status": 200}
    assert f.host.commands[0][-3:] == ["-H", "Host: shop.example", "http://127.0.0.1/health"]
    assert f.logs == ["healthy through nginx: HTTP 200"]


def test_https_goes_through_port_443_with_the_name():
    f = Fake("ok\n204")
    f.check(SCHEME="https")
    assert f.host.commands[0][-4:] == ["--resolve", "shop.example:443:127.0.0.1", "--insecure", "https://shop.example/health"]


def test_a_502_then_200_passes():
    assert Fake("bad gateway\n502", "ok\n200").check() == {"status": 200}


def test_a_4xx_fails_at_once_naming_the_setting():
    f = Fake("nope\n404")
    with pytest.raises(AgentError, match=r"^GET /health through nginx answered HTTP 404 .*flask-deploy:healthPath"):
        f.check()
    assert f.now == 0 and f.logs == ["body: nope"]


def test_no_answer_within_the_timeout_fails_with_the_journal_and_the_apps_error():
    f = Fake("curl: (7) refused\n000")
    with pytest.raises(AgentError, match=r"^GET /health through nginx did not answer 2xx within 10s \(flask-deploy:healthTimeoutSeconds\)"):
        f.check()
    assert 10 <= f.now < 11
    assert "health check through nginx failed: HTTP 000; body: curl: (7) refused" in f.logs
    assert f.logs[-1] == "app error: RuntimeError: no database"
    assert ["journalctl", "-u", "fdeploy-shop@*", "-n", "30", "--no-pager", "-o", "cat"] in f.host.commands


@pytest.mark.parametrize("bad", [{"HEALTH_PATH": "health"}, {"HOST_HEADER": "a b"}, {"HEALTH_TIMEOUT": "x"}, {"SCHEME": "ftp"}])
def test_bad_parameters_are_refused_before_any_request(bad):
    out, err = io.StringIO(), io.StringIO()
    host = Host(root="/nonexistent", run=lambda *a, **k: pytest.fail("ran a command"))
    assert cli.main(["health"], stdin=io.StringIO(json.dumps(dict(PARAMS, **bad))), stdout=out, stderr=err, host=host) == 1
    assert json.loads(out.getvalue())["ok"] is False
