"""A slot's health check (the switch's check_slot): the app answers its health path on the slot's own
socket. A process that exits (its unit fails, stops, or systemd is restarting it) fails the check at
once, with the journal lines that say why; only a process that runs but does not answer gets the
whole timeout. A start systemd itself failed with 219/CGROUP is retried once: not the app's doing."""
import re
import signal
import time
from typing import Callable, Dict, Tuple

from .app import App
from .host import Host

PROPS = ("ActiveState", "SubState", "MainPID", "ExecMainCode", "ExecMainStatus", "ExecStartPre")
SLOT = re.compile(r"main|blue|green|probe|canary")


def unit_props(host: Host, unit: str) -> Dict[str, str]:
    """UNIT's PROPS as systemd shows them ("" for any it cannot tell)."""
    r = host.run(["systemctl", "show", unit, *("-p" + p for p in PROPS)])
    props = dict.fromkeys(PROPS, "")
    for line in (r.stdout or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key in props:
            props[key] = value.strip()
    return props


def killed_why(props: Dict[str, str]) -> str:
    """" (killed by signal N …)" when the unit's last main process died of a signal (CLD_KILLED,
    CLD_DUMPED): another process, not an error of the code (which exits with a status)."""
    if props["ExecMainCode"] not in ("2", "3"):
        return ""
    sig = props["ExecMainStatus"]
    try:
        name = signal.Signals(int(sig)).name
    except ValueError:
        name = "SIG?"
    return (" (killed by signal %s (%s) from outside: another process of the app, an operator or the OOM killer;"
            " not an error the code raised)" % (sig, name))


def died(props: Dict[str, str], pid: str) -> str:
    """Why the slot's process PID is gone ("" while it runs): the unit failed, stopped, is waiting to
    be restarted, or runs another process than the one started."""
    active, sub, main = props["ActiveState"], props["SubState"], props["MainPID"]
    if active in ("failed", "inactive"):
        return "its process exited%s and the unit is %s" % (killed_why(props), active)
    if sub == "auto-restart":
        return "its process exited%s (systemd is restarting it)" % killed_why(props)
    if main != pid:
        return "its process %s exited%s (now: %s)" % (pid, killed_why(props), "none" if main in ("0", "") else main)
    return ""


def cgroup_failure(props: Dict[str, str]) -> bool:
    """systemd could not move the new process (the main one, or a control process of the start:
    runtime docker's ExecStartPre) into the unit's cgroup: status 219/CGROUP."""
    return props["ExecMainStatus"] == "219" or re.search(r"status=219([^0-9]|$)", props["ExecStartPre"]) is not None


def probe_result(raw: bytes) -> Tuple[str, str]:
    """(CODE, BODY-EXCERPT) of curl's output (-w '\\n%{http_code}': the code last); CODE 000 when
    curl got none. The excerpt: the body's start and curl's error at its end, at most about 500 chars."""
    raw = raw.replace(b"\0", b"")
    if len(raw) > 800:
        raw = raw[:500] + raw[-300:]
    text = raw.decode(errors="replace")
    body, _, code = text.rpartition("\n")
    if not re.fullmatch(r"[0-9]{3}", code):
        body, code = text, "000"
    body = body.replace("\n", " ").rstrip(" ")
    if len(body) > 500:
        body = "%s … %s" % (body[:300], body[-200:])
    return code, body


def probe_argv(app: App, slot: str, path: str, user: str) -> list:
    """curl GET PATH on the slot's socket; as USER when given (runtime docker: nginx's user, since the
    container's socket folder is the app's and root follows no path the app can write)."""
    curl = ["curl", "-sS", "-w", "\n%{http_code}", "--max-time", "5", "--unix-socket",
            "/run/fdeploy-%s/%s.sock" % (app.name, slot), "http://localhost" + path]
    return (["runuser", "-u", user, "--"] if user else []) + curl


def journal(host: Host, unit: str, lines: int) -> str:
    return host.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"]).stdout or ""


def app_error(host: Host, unit: str) -> str:
    """The app's own exception from the journal (not Gunicorn's "failed to boot"), or the agent's
    refusal to mount a source the container would have had (runtime docker, mounts.py); "" if none."""
    found = [x for x in journal(host, unit, 300).splitlines()
             if re.match(r"[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)(:|$)|error: .*refusing to mount", x) and "HaltServer" not in x]
    if not found:
        return ""
    last = found[-1]
    return "not started: " + last[len("error: "):] if last.startswith("error:") else "app error: " + last


def check_slot(host: Host, app: App, slot: str, path: str, timeout: int, probe_user: str, log: Callable[[str], None],
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    unit = "fdeploy-%s@%s.service" % (app.name, slot)
    started = clock()
    deadline = started + timeout
    pid = unit_props(host, unit)["MainPID"]
    retried, why, code, body = False, "", "000", ""

    def retry(props: Dict[str, str]) -> bool:
        nonlocal retried, pid, why
        if retried or not cgroup_failure(props):
            return False
        retried = True
        log("slot %s: systemd could not set up the new process (status 219/CGROUP, not the app's doing); starting it once more" % slot)
        sleep(0.5)
        if host.run(["systemctl", "restart", unit]).returncode != 0:
            return False
        pid, why = unit_props(host, unit)["MainPID"], ""
        return True

    while True:
        # the probe runs in the background: systemd holds the socket, so a probe of a dead process
        # would wait out its own timeout; the process dying is seen while it waits (every 0.2 s)
        probe, n, props = host.spawn(probe_argv(app, slot, path, probe_user)), 0, None
        while probe.poll() is None:
            if n % 4 == 0:
                props = unit_props(host, unit)
                why = died(props, pid)
                if why:
                    break
            n += 1
            sleep(0.05)
        if why:
            probe.stop()
            if props is not None and retry(props):
                continue
            break
        code, body = probe_result(probe.output())
        if code.startswith("2"):
            log("health check of %s passed: %s" % (slot, code))
            return True
        if code.startswith("4"):   # a client error (404: no such route) will not change by waiting
            why = ("GET %s answered HTTP %s; the health path (flask-deploy:healthPath) must answer 2xx: set it to a route "
                   "of the app that does" % (path, code))
            break
        props = unit_props(host, unit)
        why = died(props, pid)
        if why:
            if retry(props):
                continue
            break
        if clock() >= deadline:
            break
        sleep(0.5)
    if why:
        log("slot %s: %s after %ds; not waiting out the %ds health timeout" % (slot, why, clock() - started, timeout))
    else:
        log("health check of slot %s (%s) failed within %ds: HTTP %s; body: %s" % (slot, path, timeout, code, body))
    log("--- last lines of the journal of %s ---" % unit)
    text = journal(host, unit, 30)
    log(text.rstrip("\n"))
    if "Dependency failed" in text and unit.endswith(".service"):
        # the service never ran: its socket unit did not start; systemd says why in the socket's own journal
        sock = unit[:-len(".service")] + ".socket"
        log("--- last lines of the journal of %s ---" % sock)
        log(journal(host, sock, 10).rstrip("\n"))
    error = app_error(host, unit)
    if error:
        log(error)
    return False
