"""ops_commands.py: what `fdeploy logs`, `exec`, `console` and `maintenance` run on the server (the
glue ops.sh was), with exec, the line reader and the nginx commands replaced at the Host seam."""
import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, ops_commands  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
import test_agent_ops  # noqa: E402
from test_agent_ops import RID, Fake  # noqa: E402


@pytest.fixture
def root(tmp_path):
    return test_agent_ops.root.__wrapped__(tmp_path)   # the ops tests' server root


class Exec(BaseException):   # (the cli catches Exception)
    pass


def make_host(root, fake=None, lines=()):
    def exec_(argv):
        raise Exec(list(argv))   # exec never returns
    return Host(root=str(root), run=fake or Fake(states={"fdeploy-shop@blue.service": "active/running"}), which=lambda c: None,
                user_ids=lambda name: (1000, 1000), exec_=exec_, lines=lambda argv: iter(lines))


def main(host, argv, stdin):
    out, err = io.StringIO(), io.StringIO()
    try:
        status = cli.main(argv, stdin=stdin, stdout=out, stderr=err, host=host)
    except Exec as e:
        return "exec", e.args[0], err.getvalue()
    return status, out.getvalue(), err.getvalue()


def params(**p):
    return io.StringIO(json.dumps(dict({"APP": "shop"}, **p)))


def test_logs_replace_the_agent_with_journalctl(root):
    status, argv, _ = main(make_host(root), ["logs", "--field", "lines"], params(LINES="5", GREP="boom", FOLLOW=True))
    assert status == "exec"
    assert argv == ["journalctl", "-u", "fdeploy-shop@*", "--no-pager", "-o", "short-iso", "-n", "5", "--grep", "boom", "-f"]
    status, argv, _ = main(make_host(root), ["logs"], params(JOB="nightly"))
    assert argv[:3] == ["journalctl", "-u", "fdeploy-shop-job-nightly.service"]


def test_logs_of_nginx_are_read_by_the_agent_and_followed_through_a_filter(root, capsys):
    (root / "var/log/nginx").mkdir(parents=True)
    (root / "var/log/nginx/fdeploy-shop.error.log").write_text("2026/12/01 10:00:00 [error] 1#1: boom\n2026/12/01 10:00:01 [error] calm\n")
    status, out, _ = main(make_host(root), ["logs", "--field", "lines"], params(NGINX=True, GREP="boom"))
    assert status == 0 and out == "2026/12/01 10:00:00 [error] 1#1: boom\n"
    # -f with --grep: tail -F's lines as they come, only those that match (no grep process, no shell)
    host = make_host(root, lines=["a boom\n", "quiet\n", "boom again\n"])
    status, out, _ = main(host, ["logs", "--field", "lines"], params(NGINX=True, FOLLOW=True, GREP="bo+m", LINES="3"))
    assert status == 0 and capsys.readouterr().out == "a boom\nboom again\n"
    assert host.commands[-1][:4] == ["tail", "-n", "3", "-F"]
    # without --grep: tail itself replaces the agent
    status, argv, _ = main(make_host(root), ["logs"], params(NGINX=True, FOLLOW=True))
    assert status == "exec" and argv[0] == "tail"


def test_logs_bad_pattern_is_named(root):
    status, out, err = main(make_host(root, lines=["x\n"]), ["logs"], params(NGINX=True, FOLLOW=True, GREP="("))
    assert status == 1 and "bad --grep pattern" in json.loads(out)["error"]


def test_exec_reads_only_its_parameters_line_the_rest_is_the_commands_stdin(root):
    r, w = os.pipe()
    os.write(w, (json.dumps({"APP": "shop", "CMD": json.dumps(["python", "-c", "x"])}) + "\nthe command's input\n").encode())
    os.close(w)
    rest = []

    def exec_(argv):
        rest.append(os.read(r, 100))
        raise Exec(list(argv))
    host = make_host(root)
    host._exec = exec_
    (root / "srv/shop/releases" / RID / ".venv/bin/python").write_text("")
    (root / "srv/shop/releases" / RID / ".venv/bin/python").chmod(0o755)
    with os.fdopen(r, "r", closefd=False) as stdin:
        status, argv, _ = main(host, ["exec"], stdin)
    os.close(r)
    assert status == "exec" and argv[0] == "systemd-run" and "--pipe" in argv
    assert argv[argv.index("--") + 1:] == ["/srv/shop/releases/%s/.venv/bin/python" % RID, "-c", "x"]
    assert rest == [b"the command's input\n"]


def test_console_never_reads_stdin_the_terminal(root):
    class Terminal(io.StringIO):
        def read(self, *a):
            raise AssertionError("the console's stdin was read")
        readline = read
    (root / "srv/shop/releases" / RID / ".venv/bin/python").write_text("")
    (root / "srv/shop/releases" / RID / ".venv/bin/python").chmod(0o755)
    status, argv, err = main(make_host(root), ["console", "--app", "shop"], Terminal())
    assert status == "exec" and "--pty" in argv and argv[-1].endswith("/.venv/bin/python"), err


def test_not_deployed_is_exit_3(root):
    os.unlink(root / "etc/fdeploy/shop.conf")
    for verb in ("logs", "exec", "maintenance"):
        status, out, _ = main(make_host(root), [verb], params(CMD='["true"]', MODE="on"))
        assert status == 3, verb
    assert main(make_host(root), ["console", "--app", "shop"], io.StringIO())[0] == 3


class Nginx(Fake):
    """Fake plus: pgrep names old worker 4242, which exits after GONE_AFTER sleeps."""

    def __init__(self, root, **kw):
        super().__init__(states={"fdeploy-shop@blue.service": "active/running"}, **kw)
        self.root = root

    def __call__(self, argv, merge_output=False):
        if argv[0] == "pgrep":
            (self.root / "proc/4242").mkdir(parents=True, exist_ok=True)
            return subprocess.CompletedProcess(argv, 0, "4242\n", "")
        return super().__call__(argv, merge_output)


def test_maintenance_reloads_nginx_and_returns_once_the_old_workers_are_gone(root):
    fake = Nginx(root)
    host = make_host(root, fake)
    slept = []

    def sleep(s):
        slept.append(s)
        if len(slept) == 3:
            os.rmdir(root / "proc/4242")
    out = ops_commands.maintenance(host, {"APP": "shop", "MODE": "on"}, lambda line: None, 0, sleep=sleep)
    assert out["message"] == "maintenance on" and out["changed"] is True
    cmds = [c[:2] for c in host.commands if c[0] in ("nginx", "systemctl", "pgrep")]
    assert cmds == [["nginx", "-t"], ["pgrep", "-d"], ["systemctl", "reload"]] and len(slept) == 3
    # the cli prints the message alone (fdeploy maintenance: --field message)
    status, out, _ = main(make_host(root, Nginx(root)), ["maintenance", "--field", "message"], params(MODE="off"))
    assert (status, out) == (0, "maintenance off\n")


def test_maintenance_refused_by_nginx_reloads_nothing(root):
    host = make_host(root, Nginx(root, nginx_ok=False))
    status, out, err = main(host, ["maintenance"], params(MODE="on"))
    assert status == 1 and "nginx rejects" in json.loads(out)["error"]
    assert not any(c[0] in ("pgrep", "systemctl") and "reload" in c for c in host.commands)
