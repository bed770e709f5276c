"""The preflight: load a release's app as its slot would — the app user, the slots' sandbox, the
release folder, the venv, the environment, Gunicorn's own loader and the unit's own Gunicorn
options (components/scripts/preflight.py runs inside) — and, in the switch, GET the health path once.
  preflight         the deploy's step before migrations and release commands, with the staged
                    environment: a release that does not load never touches the database (issue 24,
                    defect 2). It loads the app and calls no route: a request could write to a
                    database its release commands have not set up yet.
  check(…, "switch")  in the switch (switch.py) before the live slot restarts (restart, a first
                    deploy), with the settings in force: loads and GETs the health path (not 4xx)
  check(…, "light")   the same beside a live slot, where only what the slot's own check cannot
                    catch fast fails it; skipped when the deploy's preflight passed for the same
                    release, environment and unit (state.json): the new slot's check decides
"""
import os
import re
from contextlib import nullcontext
from typing import Any, Callable, Dict, List

from . import app as apps
from . import gunicorn, lease, shared_links, slotuser
from . import state as states
from . import units
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "preflight.py")
RESULT = re.compile(r"^(loads \S|GET /\S*: HTTP |preflight: GET )", re.M)   # preflight.py's last word when it finished
EXCEPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception|Exit|Interrupt)(:|$)")


def exception_line(output: str) -> str:
    """The app's own exception (the last one a traceback names), or ""."""
    found = [line for line in output.splitlines() if EXCEPTION.match(line) and "HaltServer" not in line]
    return found[-1] if found else ""


def remedy(error: str) -> str:
    if "Read-only file system" in error:
        return (" The release folder is read-only: write files under a shared folder (flask-deploy:sharedDirs, kept across"
                " releases) and log to stdout/stderr (the journal: fdeploy logs).")
    if error.startswith(("ModuleNotFoundError", "ImportError")):
        return " Check requirements.txt in appDir (flask-deploy:appDir) and flask-deploy:appModule."
    return ""


def _params(host: Host, params: Dict[str, Any]):
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = str(params.get("RELEASE_ID", ""))
    if not re.fullmatch(r"[0-9a-f]{12}", rid):
        raise AgentError("bad release id %r" % rid)
    health = str(params.get("HEALTH_PATH", ""))
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", health):
        raise AgentError("bad health path %r (flask-deploy:healthPath: e.g. /health)" % health)
    timeout = str(params.get("HEALTH_TIMEOUT", ""))
    if not re.fullmatch(r"[0-9]{1,3}", timeout):
        raise AgentError("bad health timeout %r (flask-deploy:healthTimeoutSeconds)" % timeout)
    return app, rid, units.check_app_module(params.get("APP_MODULE")), health, int(timeout)


def _fingerprint(state: Dict[str, Any], rid: str) -> Dict[str, Any]:
    staged = state["staged"]
    return {"release": rid, "env": staged.get("env", {}).get("revision"), "unit": staged.get("unit", {}).get("revision")}


def run(host: Host, app: apps.App, rid: str, target: str, health: str, timeout: int, env_file: str,
        gunicorn_args: List[str], log: Log, user: str) -> "tuple[int, str]":
    """Runs preflight.py in a transient unit as USER (HEALTH "-": load only, no request); (exit status, its output)."""
    release = "%s/releases/%s" % (app.root, rid)
    if read_regular(host.path(release + "/.fdeploy-release.json")) is None:
        raise AgentError("release %s is not installed on this server (pulumi up installs it)" % rid)
    own_dir(host.path(app.root + "/tools"), 0o755)
    with open(SCRIPT, "rb") as f:
        write_atomic(host.path(app.root + "/tools/preflight.py"), f.read(), 0o644)
    props: List[str] = []
    for line in units.hardening(app.root).splitlines():
        props += ["-p", line]
    argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--unit=fdeploy-%s-preflight-%d" % (app.name, os.getpid()),
            "-p", "User=" + user, "-p", "Group=" + app.user, "-p", "WorkingDirectory=" + release,
            "-p", "EnvironmentFile=" + env_file, "-p", "Environment=RELEASE_ID=" + rid, *props,
            "-p", "RuntimeMaxSec=%d" % max(timeout, 5),
            release + "/.venv/bin/python", app.root + "/tools/preflight.py", target, health, *gunicorn_args]
    r = host.run(argv, merge_output=True)
    return r.returncode, r.stdout or ""


def check(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, mode: str) -> Dict[str, Any]:
    app, rid, target, health, timeout = _params(host, params)
    # the switch's preflight runs inside the switch, which holds the lock already
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)) if mode == "staged" else nullcontext():
        state = states.load(host, app)
        shared_links.relink(host, app, rid, log)   # the release loads the rendered files, never the app's stand-ins
        unit = state["staged"].get("unit", {})
        if mode == "light" and state.get("preflight") == dict(_fingerprint(state, rid), passed=True):
            log("preflight: release %s loaded before the migrations, with these settings; the new slot's check decides" % rid)
            return {"loads": True, "skipped": True}
        env_file = app.config_dir + ("/env.desired" if mode == "staged" else "/env")
        options = unit.get("gunicornArgs", []) + gunicorn.flags(gunicorn.installed_version(host, "%s/releases/%s" % (app.root, rid)))
        # as the new release's slot user, which no process of the live release can signal or trace
        user = slotuser.next_user(app, slotuser.live_user(host, app))
        host.kill_user(user)
        slotuser.shared_modes(host, app, log)
        rc, out = run(host, app, rid, target, "-" if mode == "staged" else health, timeout, env_file, options, log, user)
        last = out.strip().splitlines()[-1] if out.strip() else ""
        live = os.path.lexists(host.path(app.root + "/current"))
        untouched = " It is not live; the live release is untouched." if live else " Nothing was live yet."
        if rc == 0 and not RESULT.search(out):
            # systemd-run --wait exits 0 for a process that SIGTERM, SIGINT, SIGHUP or SIGPIPE ended:
            # no result line from preflight.py means it did not finish
            raise AgentError("the preflight of release %s was stopped by a signal from outside before it finished: not the code's doing;"
                             " pulumi up again.%s\n(another process of the app or an operator; systemd-run exit 0 without its result)"
                             % (rid, untouched if live else ""))
        if rc == 0:
            log("preflight: release %s loads %s; %s" % (rid, target, last))
            if mode == "staged":
                state["preflight"] = dict(_fingerprint(state, rid), passed=True)
                states.save(host, app, state)
            return {"loads": True, "skipped": False}
        error = exception_line(out)
        if rc == 1 and mode == "light" and error:
            log("preflight: release %s does not load %s (%s); its slot's check follows" % (rid, target, error))
            return {"loads": False, "skipped": False}
        tail = "\n".join(out.rstrip().splitlines()[-25:])
        if rc == 255:   # systemd-run: the process died of a signal, which no code of the release raises
            raise AgentError("the preflight of release %s was killed by a signal from outside: not the code's doing; pulumi up again.%s\n"
                             "(another process of the app, an operator or the OOM killer; systemd-run exit 255)\n"
                             "--- the preflight's output ---\n%s" % (rid, untouched, tail))
        if rc == 2:
            raise AgentError("release %s answers GET %s with %s: the health path (flask-deploy:healthPath) must answer 2xx.%s\n"
                             "set it to a route of the app that does (e.g. /), or add that route" % (rid, health, last, untouched))
        if rc in (3, 4):
            raise AgentError("release %s (flask-deploy:appModule %s): %s.%s" % (rid, target, last, untouched))
        if rc == 1 and error:
            raise AgentError("release %s does not load (flask-deploy:appModule %s): %s.%s%s\n--- the preflight's output ---\n%s"
                             % (rid, target, error, remedy(error), untouched, tail))
        raise AgentError("the preflight of release %s ended with no Python error (exit %d): killed, out of memory or time"
                         " (flask-deploy:healthTimeoutSeconds %d).%s\nsomething on the server ended it; not the code's doing as far as it shows\n"
                         "--- the preflight's output ---\n%s" % (rid, rc, timeout, untouched, tail))


def preflight(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    return check(host, params, log, lock_wait, "staged")
