"""`lb-session`: the balancer's side of a fleet rollout in one agent process (fleet.py). params (stdin's first
line) APP; then one request a line, {"verb": "lb-drain" | "lb-ready", "params": {…}}, each answered by one JSON
line on stdout ({"ok": true, …} as the verb's result, or {"ok": false, "error": …}) until stdin ends. Each
request is the verb itself (haproxy.py: its own checks and config lock); what the session saves is a process
start on the balancer (the supervisor, the agent and its imports: 0.5-2 s under load), twice per host in the
rollout's serial part. Session is the deploying machine's end."""
import json
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, IO, List, Optional, Tuple

from . import haproxy
from .app import check_name
from .errors import AgentError
from .host import Host

Log = Callable[[str], None]
VERBS: Dict[str, Callable[..., Dict[str, Any]]] = {"lb-drain": haproxy.lb_drain, "lb-ready": haproxy.lb_ready}
EXIT_LIMIT = 124   # supervise.py: the session's time limit ended it


def lb_session(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, requests: Optional[IO[str]] = None,
               out: Optional[IO[str]] = None) -> Dict[str, Any]:
    app = check_name(params.get("APP"))
    count = 0
    for line in requests or sys.stdin:
        try:
            req = json.loads(line)
            verb = VERBS[req["verb"]]
            result: Dict[str, Any] = dict(verb(host, dict(req["params"], APP=app), log, lock_wait), ok=True)
        except AgentError as e:
            log("error: %s" % e)
            result = {"ok": False, "error": str(e)}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            result = {"ok": False, "error": "lb-session: bad request %r (%s): expected {\"verb\": \"lb-drain\" or \"lb-ready\", \"params\": {…}}" % (
                line.strip()[:100], e)}
        print(json.dumps(result), file=out or sys.stdout, flush=True)
        count += 1
    return {"requests": count}


def popen(argv: List[str]) -> "subprocess.Popen[str]":
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Session:
    """The deploying machine's end: ARGV (ssh to the balancer running lb-session) started at the first request,
    and again when its time limit ended it; one request at a time; its log lines through LOG as they come."""

    def __init__(self, argv: List[str], app: str, log: Log, start: Optional[Callable[[List[str]], "subprocess.Popen[str]"]] = None) -> None:
        self.argv, self.app, self.log, self.start = argv, app, log, start or popen
        self.proc: Optional["subprocess.Popen[str]"] = None
        self.reader: Optional[threading.Thread] = None   # the running process's stderr, read to its end
        self.said: List[str] = []
        self.lock = threading.Lock()

    def _stderr(self, proc: "subprocess.Popen[str]") -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.said.append(line.rstrip("\n"))
            self.log(line.rstrip("\n"))

    def _ask(self, verb: str, params: Dict[str, Any]) -> Tuple[int, Dict[str, Any], str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self.start(self.argv)
            self.reader = threading.Thread(target=self._stderr, args=(self.proc,), daemon=True)
            self.reader.start()
            self.proc.stdin.write(json.dumps({"APP": self.app}) + "\n")   # type: ignore[union-attr]
        proc, self.said = self.proc, []
        try:
            proc.stdin.write(json.dumps({"verb": verb, "params": params}) + "\n")   # type: ignore[union-attr]
            proc.stdin.flush()   # type: ignore[union-attr]
            line = proc.stdout.readline()   # type: ignore[union-attr]
        except OSError:   # its end of the pipe closed: it ended
            line = ""
        if not line:
            code = proc.wait()
            if self.reader is not None:   # its last words may still be in the pipe: read them before saying them
                self.reader.join(timeout=5)
            self.proc = None
            return (code or 255), {}, "\n".join(self.said)
        try:
            answer = json.loads(line)
        except ValueError:
            answer = {"ok": False, "error": "lb-session: not a JSON answer: %r" % line[:200]}
        return (0 if answer.get("ok") else 1), answer, ""

    def call(self, verb: str, params: Dict[str, Any]) -> Tuple[int, Dict[str, Any], str]:
        """(0 answered ok | 1 answered an error | the ended session's exit status), the answer, its last words.
        A session its time limit ended is started again once (drain and ready can run twice)."""
        with self.lock:
            code, answer, said = self._ask(verb, params)
            if code == EXIT_LIMIT:
                code, answer, said = self._ask(verb, params)
            return code, answer, said

    def close(self) -> None:
        with self.lock:
            proc, self.proc = self.proc, None
            if proc is not None and proc.poll() is None:
                proc.stdin.close()   # type: ignore[union-attr]
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
