"""The balancer's side of a fleet rollout in one agent process (agent lb_session.py): each request answered by
one JSON line, as the verb alone would; the deploying machine's Session sends them over one process, one at a
time, and starts it again when its time limit ended it (a stand-in program speaks the protocol)."""
import io
import json
import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, lb_session  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402


def test_each_request_is_the_verb_itself_answered_by_one_line(tmp_path, monkeypatch):
    seen = []

    def drain(host, params, log, lock_wait):
        seen.append(("drain", params))
        log("haproxy: drained")
        return {"was": "UP", "inFlight": 0}

    def ready(host, params, log, lock_wait):
        raise AgentError("host %s failed its health check through its nginx (flask-deploy:healthPath)" % params["HOST"])
    monkeypatch.setattr(lb_session, "VERBS", {"lb-drain": drain, "lb-ready": ready})
    requests = io.StringIO("\n".join(json.dumps(r) for r in [
        {"verb": "lb-drain", "params": {"HOST": "10.0.0.1", "WAIT": 5, "APP": "other"}},
        {"verb": "lb-ready", "params": {"HOST": "10.0.0.1", "WAIT_UP": 5}},
        {"verb": "lb-configure", "params": {}}]) + "\nnot json\n")
    out, logs = io.StringIO(), []
    assert lb_session.lb_session(Host(root=str(tmp_path)), {"APP": "shop"}, logs.append, 0, requests, out) == {"requests": 4}
    answers = [json.loads(x) for x in out.getvalue().splitlines()]
    assert answers[0] == {"was": "UP", "inFlight": 0, "ok": True}
    assert seen == [("drain", {"HOST": "10.0.0.1", "WAIT": 5, "APP": "shop"})]   # the session's app, never a request's
    assert answers[1] == {"ok": False, "error": "host 10.0.0.1 failed its health check through its nginx (flask-deploy:healthPath)"}
    assert not answers[2]["ok"] and "bad request" in answers[2]["error"] and not answers[3]["ok"]
    assert logs[:2] == ["haproxy: drained", "error: host 10.0.0.1 failed its health check through its nginx (flask-deploy:healthPath)"]


def test_the_verb_takes_its_params_from_the_first_line_and_requests_from_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(lb_session, "VERBS", {"lb-drain": lambda h, p, log, lw: {"host": p["HOST"]}})
    stdin = io.StringIO(json.dumps({"APP": "shop"}) + "\n" + json.dumps({"verb": "lb-drain", "params": {"HOST": "10.0.0.2"}}) + "\n")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", out)
    assert cli.main(["lb-session"], stdin=stdin, stdout=out, stderr=err, host=Host(root=str(tmp_path))) == 0, err.getvalue()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines == [{"host": "10.0.0.2", "ok": True}, {"ok": True, "requests": 1}]


# a stand-in for `ssh <balancer> … lb-session`: answers each request with its verb and the process id; a request
# {"params": {"exit": N}} ends it with status N before answering; its pid file counts the processes started
STANDIN = textwrap.dedent("""
    import json, os, sys
    open(sys.argv[1], "a").write("%d\\n" % os.getpid())
    first = json.loads(sys.stdin.readline())
    for line in sys.stdin:
        req = json.loads(line)
        if "exit" in req["params"]:
            print("Timeout, server 10.0.0.9 not responding." if req["params"]["exit"] == 255 else "step limit", file=sys.stderr, flush=True)
            sys.exit(req["params"]["exit"])
        print("did %s" % req["verb"], file=sys.stderr, flush=True)
        print(json.dumps({"ok": req["verb"] != "bad", "verb": req["verb"], "app": first["APP"], "pid": os.getpid()}), flush=True)
""")


@pytest.fixture
def standin(tmp_path):
    script, pids = tmp_path / "standin.py", tmp_path / "pids"
    script.write_text(STANDIN)
    return [sys.executable, str(script), str(pids)], pids


def test_one_process_answers_every_request_in_turn_and_logs_as_it_goes(standin):
    argv, pids = standin
    logs = []
    s = lb_session.Session(argv, "shop", logs.append)
    try:
        a = [s.call(v, {"HOST": "10.0.0.%d" % i}) for i, v in enumerate(["lb-drain", "lb-ready", "bad"])]
    finally:
        s.close()
    assert [(code, x["verb"], x["app"]) for code, x, _ in a] == [(0, "lb-drain", "shop"), (0, "lb-ready", "shop"), (1, "bad", "shop")]
    assert len(pids.read_text().split()) == 1 and "did lb-drain" in logs


def test_a_session_its_limit_ended_is_started_again_once_one_the_balancer_ended_is_said(standin):
    argv, pids = standin
    s = lb_session.Session(argv, "shop", lambda line: None)
    try:
        code, answer, _ = s.call("lb-drain", {"exit": lb_session.EXIT_LIMIT})
        assert code == lb_session.EXIT_LIMIT   # asked twice: the second session hit it too
        assert len(pids.read_text().split()) == 2
        code, answer, said = s.call("lb-ready", {"exit": 255})
        assert (code, answer) == (255, {}) and "not responding" in said and len(pids.read_text().split()) == 3
        assert s.call("lb-ready", {})[0] == 0 and len(pids.read_text().split()) == 4
    finally:
        s.close()
