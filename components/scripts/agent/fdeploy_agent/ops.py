"""Day-2 operations (`fdeploy`, cli/; ops_commands.py runs what they decide): read verbs change nothing, every verb is
idempotent. An app with no live release here is NotDeployed (exit 3: cli says "no app deployed").
  ops-status       live release and slots, health now, last deploy, disk, drift, maintenance, canary
  ops-releases     {"releases": [...]}: the kept and past releases, newest first
  ops-logs         what to run for `fdeploy logs`: argv (journalctl, or tail -F with a grep filter);
                   none for nginx's logs without FOLLOW: ops-nginx-lines reads them
  ops-nginx-lines  lines: nginx's log lines (--since is read from each line's own time)
  ops-exec         argvz: the command line (NUL-separated) that runs CMD, or with CONSOLE a shell,
                   in the live release (systemd-run in the slots' sandbox, or docker exec)
  ops-maintenance  MODE on|off: the page and the nginx snippet (503) the site includes; nginx -t
                   checked, the previous state put back if it refuses (ops_commands reloads nginx)
  ops-lock         ACTION status|release: who holds the deploy lock; release stops the holders
"""
import calendar
import fcntl
import html
import json
import os
import pwd
import re
import secrets
import signal
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import app as apps
from . import history, lock, report, slotuser, transient, units
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host

Log = Callable[[str], None]
TIME = "%Y-%m-%dT%H:%M:%SZ"


NotDeployed = apps.NotDeployed


def _history_entries(host: Host, app: apps.App) -> List[Dict[str, Any]]:
    """The release history (history.py), oldest first, the schema as the text fdeploy prints."""
    return [dict(e, schema="" if e["schema"] is None else str(e["schema"])) for e in history.entries(host, app)]


def _json_file(path: str) -> Dict[str, Any]:
    try:
        value = json.loads(read_regular(path) or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _deployed_app(host: Host, params: Dict[str, Any]) -> apps.App:
    return apps.deployed(host, params.get("APP"))


class Live:
    """The app and what it runs: the live slot and its release (NotDeployed when there is none)."""

    def __init__(self, host: Host, params: Dict[str, Any]) -> None:
        self.app = _deployed_app(host, params)
        self.slot = (read_regular(host.path(self.app.slots + "/live")) or b"").decode(errors="replace").strip() or "main"
        self.release = _release_of(host, self.app, self.slot)
        if not self.release:
            raise NotDeployed("app '%s' is not deployed on this server (no live release; pulumi up deploys it)" % self.app.name)
        self.release_dir = "%s/releases/%s" % (self.app.root, self.release)


def _release_of(host: Host, app: apps.App, slot: str) -> str:
    """The release slot SLOT links to, "" when none (or not a whole release)."""
    link = host.path("%s/%s" % (app.slots, slot))
    if not slotuser.SLOT.fullmatch(slot) or not os.path.islink(link):
        return ""
    rid = os.path.basename(os.path.realpath(link))
    return rid if read_regular(host.path("%s/releases/%s/.fdeploy-release.json" % (app.root, rid))) is not None else ""


def _disk_bytes(path: str) -> int:
    """`du -sb`: the apparent size of PATH's files and folders, each inode once, no link followed."""
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            try:
                st = os.lstat(name)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _health(host: Host, app: apps.App, slot: str, path: str) -> Dict[str, Any]:
    r = host.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                  "--unix-socket", "/run/fdeploy-%s/%s.sock" % (app.name, slot), "http://localhost" + path])
    code = (r.stdout or "").strip()[-3:]
    status = int(code) if code.isdigit() else 0
    return {"path": path, "status": status, "ok": 200 <= status < 300}


def _unit_state(host: Host, unit: str) -> str:
    r = host.run(["systemctl", "show", "-p", "ActiveState", "-p", "SubState", unit])
    props = dict(line.partition("=")[::2] for line in (r.stdout or "").splitlines())
    return "%s/%s" % (props.get("ActiveState", ""), props.get("SubState", ""))


def maintenance_conf(app: apps.App) -> str:
    return app.config_dir + "/maintenance.conf"   # intended state, root-only; the site includes it


def _maintenance(host: Host, app: apps.App) -> Dict[str, Any]:
    text = read_regular(host.path(maintenance_conf(app)))
    if text is None:
        return {"on": False}
    head = text.decode(errors="replace").partition("\n")[0].split()   # "# fdeploy maintenance: on since <time> by <user> …"
    return {"on": True, "since": head[5] if len(head) > 5 else None, "by": head[7] if len(head) > 7 else None}


def _canary(host: Host, app: apps.App) -> Optional[Dict[str, Any]]:
    """The canary a deploy shifts traffic for, step by step (slots/canary.json, canary_flow.py)."""
    canary = _json_file(host.path(app.slots + "/canary.json"))
    if not canary:
        return None
    pid = canary.get("pid", 0)
    canary["inProgress"] = isinstance(pid, int) and pid > 0 and os.path.exists(host.path("/proc/%d" % pid))
    return canary


def _lock_record(host: Host, app: str) -> List[str]:
    """"PID TIME USER" of the deploy that holds the lock or took it last (with_deploy_lock's record)."""
    for suffix in (".owner", ".last"):
        text = read_regular(lock.lock_path(host, app) + suffix)
        if text is not None:
            return text.decode(errors="replace").split()
    return []


def ops_status(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    live = Live(host, params)
    app, slot, rid = live.app, live.slot, live.release
    try:
        state = report.state_report(host, {"APP": app.name}, log, lock_wait)
    except (AgentError, OSError):
        state = {}
    activation = _json_file(host.path(app.slots + "/activation.live.json"))
    health_path = str(activation.get("HEALTH_PATH", "/health"))
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", health_path):
        health_path = "/health"
    slots = []
    for name in sorted(os.listdir(host.path(app.slots))):
        if os.path.islink(host.path("%s/%s" % (app.slots, name))) and slotuser.SLOT.fullmatch(name):
            slots.append({"name": name, "release": os.path.basename(os.path.realpath(host.path("%s/%s" % (app.slots, name)))),
                          "state": _unit_state(host, "fdeploy-%s@%s.service" % (app.name, name))})
    deployed = str(activation.get("RELEASE_ID", ""))
    hist = _history_entries(host, app)
    since = next((h["time"] for h in reversed(hist) if h["release"] == rid and h["status"] == "live"), None)
    try:
        age = int(time.time() - calendar.timegm(time.strptime(since, TIME))) if since else None
    except ValueError:
        age = None
    drift = [k for k in ("unitInForce", "envInForce", "siteInForce") if state.get(k) is False]
    if state.get("running") is False:
        drift.append("notRunning")
    if deployed and rid != deployed:
        drift.append("release")
    last = dict(hist[-1]) if hist else None
    owner = _lock_record(host, app.name)
    if last and len(owner) == 3:
        last["by"] = owner[2]
    return {
        "release": rid, "installedAt": _json_file(host.path(live.release_dir + "/.fdeploy-release.json")).get("installed_at"),
        "liveSince": since, "ageSeconds": age, "liveSlot": slot, "slots": slots,
        "health": _health(host, app, slot, health_path), "lastDeploy": last, "deployedRelease": deployed,
        "disk": {"releasesBytes": _disk_bytes(host.path(app.root + "/releases")),
                 "backupsBytes": _disk_bytes(host.path(app.root + "/shared/backups")),
                 "databaseBytes": _disk_bytes(host.path(app.root + "/shared/db"))},
        "drift": drift, "maintenance": _maintenance(host, app), "canary": _canary(host, app),
    }


def ops_releases(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = _deployed_app(host, params)
    live = _release_of(host, app, (read_regular(host.path(app.slots + "/live")) or b"").decode(errors="replace").strip() or "main")
    rels: Dict[str, Dict[str, Any]] = {}
    order: List[str] = []

    def entry(rid: str) -> Dict[str, Any]:
        return rels.setdefault(rid, {"id": rid, "firstLive": None, "lastLive": None, "failedAt": None, "schema": None})
    for h in _history_entries(host, app):
        r = entry(h["release"])
        if h["status"] == "live":
            r["firstLive"] = r["firstLive"] or h["time"]
            r["lastLive"] = h["time"]
            r["schema"] = int(h["schema"]) if str(h["schema"]).isdigit() else 0
        else:
            r["failedAt"] = h["time"]
        if h["release"] in order:
            order.remove(h["release"])
        order.append(h["release"])
    rdir = host.path(app.root + "/releases")
    for rid in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
        if rid not in rels and read_regular(os.path.join(rdir, rid, ".fdeploy-release.json")) is not None:
            entry(rid)
            order.insert(0, rid)
    out = []
    for rid in reversed(order):
        r = rels[rid]
        marker = read_regular(os.path.join(rdir, rid, ".fdeploy-release.json"))
        kept = marker is not None
        try:
            installed = json.loads(marker).get("installed_at") if kept else None
        except (ValueError, AttributeError):
            installed = None
        status = "live" if rid == live else "failed" if r["lastLive"] is None and r["failedAt"] else "kept" if kept else "gone"
        r.update(kept=kept, live=rid == live, installedAt=installed, status=status)
        out.append(r)
    return {"releases": out}


NGINX_TIME = re.compile(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) ([+-])(\d\d)(\d\d)\]")   # access log
NGINX_ERROR_TIME = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)")                  # error log (UTC here)
UNITS = {"s": ("s", 1), "m": ("min", 60), "h": ("h", 3600), "d": ("d", 86400)}


def _line_time(line: str) -> int:
    m = NGINX_TIME.search(line)
    if m:
        offset = (int(m[3]) * 3600 + int(m[4]) * 60) * (-1 if m[2] == "-" else 1)
        return calendar.timegm(time.strptime(m[1], "%d/%b/%Y:%H:%M:%S")) - offset
    m = NGINX_ERROR_TIME.match(line)
    return calendar.timegm(time.strptime(m[1], "%Y/%m/%d %H:%M:%S")) if m else 0


def nginx_lines(texts: Iterable[str], since: str, pattern: str, n: int, now: float) -> List[str]:
    """The lines of nginx's logs at or after SINCE (30s, 15m, 1h, 2d; another form: all), matching
    PATTERN, in time order, the last N (0: all)."""
    m = re.fullmatch(r"(\d+)([smhd])", since)
    cut = now - int(m[1]) * UNITS[m[2]][1] if m else None
    rx = re.compile(pattern) if pattern else None
    out = [line for text in texts for line in text.splitlines()
           if (cut is None or _line_time(line) >= cut) and (rx is None or rx.search(line))]
    out.sort(key=_line_time)
    return out[-n:] if n else out


def _one_line(params: Dict[str, Any], key: str) -> str:
    value = params.get(key, "")
    if not isinstance(value, str) or "\n" in value or "\0" in value:
        raise AgentError("%s: expected one line of text" % key)
    return value


def _logs_params(host: Host, params: Dict[str, Any]) -> Dict[str, Any]:
    name = _deployed_app(host, params).name
    lines = str(params.get("LINES", "") or "")
    if not re.fullmatch(r"[0-9]{0,6}", lines):
        raise AgentError("bad line count %r (LINES: a number of up to 6 digits)" % lines)
    return {"name": name, "n": int(lines or 100), "since": _one_line(params, "SINCE"), "pattern": _one_line(params, "GREP"),
            "follow": params.get("FOLLOW") in (True, "true"), "nginx": params.get("NGINX") in (True, "true"),
            "files": ["/var/log/nginx/fdeploy-%s.%s.log" % (name, kind) for kind in ("access", "error")]}


def ops_nginx_lines(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    p = _logs_params(host, params)
    try:
        re.compile(p["pattern"])
    except re.error as e:
        raise AgentError("bad --grep pattern %r: %s" % (p["pattern"], e))
    texts = [(read_regular(host.path(f)) or b"").decode(errors="replace") for f in p["files"]]
    return {"lines": nginx_lines(texts, p["since"], p["pattern"], p["n"], time.time())}


def ops_logs(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    p = _logs_params(host, params)
    name, n, since, pattern, follow = p["name"], p["n"], p["since"], p["pattern"], p["follow"]
    if p["nginx"]:
        if follow:
            return {"argv": ["tail", "-n", str(n), "-F"] + p["files"],
                    "filter": ["grep", "--line-buffered", "-E", "-e", pattern] if pattern else []}
        return {"argv": [], "filter": []}
    unit = "fdeploy-%s@*" % name
    job = params.get("JOB") or ""
    if job:
        if not isinstance(job, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", job):
            raise AgentError("bad job name %r (JOB: a-z, 0-9, _ and -, up to 40 characters)" % (job,))
        unit = "fdeploy-%s-job-%s.service" % (name, job)
    argv = ["journalctl", "-u", unit, "--no-pager", "-o", "short-iso", "-n", str(n)]
    if since:
        m = re.fullmatch(r"(\d+)([smhd])", since)
        argv += ["--since", "-%s%s" % (m[1], UNITS[m[2]][0]) if m else since]
    if pattern:
        argv += ["--grep", pattern]
    if follow:
        argv.append("-f")
    return {"argv": argv, "filter": []}


def _command(params: Dict[str, Any]) -> List[str]:
    try:
        cmd = json.loads(params.get("CMD") or "null")
    except (TypeError, ValueError):
        cmd = None
    if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) and a and "\0" not in a for a in cmd[:1]) \
            or not all(isinstance(a, str) and "\0" not in a for a in cmd):
        raise AgentError("bad command (CMD: a JSON list of strings, the first a command name)")
    return cmd


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def exec_argv(host: Host, live: Live, cmd: List[str], pty: bool) -> List[str]:
    """The command line that runs CMD in the live release as the live slot's user, with the app's
    environment files and the slots' sandbox, in a transient unit (the command is no child of root's);
    with runtime docker, in the live slot's container."""
    app, rdir = live.app, live.release_dir
    container = "fdeploy-%s-%s" % (app.name, live.slot)
    if not os.path.isdir(host.path(rdir + "/.venv")) and host.which("docker") \
            and host.run(["docker", "container", "inspect", container]).returncode == 0:
        return ["docker", "exec", "-it" if pty else "-i", container] + cmd
    if "/" not in cmd[0]:   # systemd-run looks a name up in its own PATH: the venv's first, as the unit's PATH says
        found = next((d + "/" + cmd[0] for d in (rdir + "/.venv/bin", "/usr/local/bin", "/usr/bin", "/bin")
                      if _executable(host.path(d + "/" + cmd[0]))), None)
        if found is None:
            raise AgentError("command not found: %s (neither in the release's venv nor in /usr/local/bin, /usr/bin, /bin)" % cmd[0])
        cmd = [found] + cmd[1:]
    literal, cmd = transient.literal(host, cmd)   # the words are data: never expanded by systemd
    props = []
    for line in units.hardening(app.root).splitlines() + [
            "User=" + (slotuser.live_user(host, app) or app.user), "Group=" + app.user, "WorkingDirectory=" + rdir,
            "EnvironmentFile=" + app.env_file, "EnvironmentFile=%s/%s.env" % (app.slots, live.slot),
            "Environment=PATH=%s/.venv/bin:/usr/local/bin:/usr/bin:/bin" % rdir, "Environment=HOME=/tmp",
            "Environment=VIRTUAL_ENV=%s/.venv" % rdir]:
        if line.strip():
            props += ["-p", line]
    return (["systemd-run", "--quiet", "--wait", "--collect", "--pty" if pty else "--pipe"] + literal
            + ["--unit=fdeploy-%s-exec-%s" % (app.name, secrets.token_hex(4))] + props + ["--"] + cmd)


def ops_exec(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP, and CMD (a JSON list of strings) or CONSOLE (`flask shell`, else python, on a terminal)."""
    live = Live(host, params)
    if params.get("CONSOLE") is True:
        flask = _executable(host.path(live.release_dir + "/.venv/bin/flask"))
        cmd, pty = (["flask", "shell"] if flask else ["python"]), True
    else:
        cmd, pty = _command(params), False
    argv = exec_argv(host, live, cmd, pty)
    return {"argv": argv, "argvz": "".join(a + "\0" for a in argv)}


DEFAULT_MESSAGE = "The site is down for maintenance. Please try again shortly."
SNIPPET = """# fdeploy maintenance: on since {since} by {by} (`fdeploy maintenance off` removes it)
set $fdeploy_maintenance 1;
if ($remote_addr = 127.0.0.1) {{ set $fdeploy_maintenance 0; }}
if ($uri = /fdeploy-maintenance.html) {{ set $fdeploy_maintenance 0; }}
if ($uri ~ ^/\\.well-known/acme-challenge/) {{ set $fdeploy_maintenance 0; }}
if ($fdeploy_maintenance) {{ return 503; }}
error_page 503 /fdeploy-maintenance.html;
location = /fdeploy-maintenance.html {{ internal; alias {page}; default_type text/html; add_header Retry-After 120 always; add_header Cache-Control no-store always; }}
"""


def maintenance_page(message: str, page: str) -> bytes:
    if page:
        return page.encode()
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Maintenance</title></head>"
            "<body><h1>Down for maintenance</h1><p>%s</p></body></html>\n" % html.escape(message or DEFAULT_MESSAGE)).encode()


def ops_maintenance(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params APP, MODE on|off, MESSAGE or HTML (on). nginx includes the snippet in the app's site
    (nginx-site.ts): every request but the server's own (health checks) and ACME challenges
    (certificate renewals) answers 503 with the page. ops_commands.maintenance reloads nginx afterwards."""
    app = _deployed_app(host, params)
    mode = params.get("MODE")
    if mode not in ("on", "off"):
        raise AgentError("bad maintenance mode %r (MODE: on or off)" % (mode,))
    conf = host.path(maintenance_conf(app))
    before = read_regular(conf)
    if mode == "on":
        message, page = params.get("MESSAGE") or "", params.get("HTML") or ""
        if not isinstance(message, str) or not isinstance(page, str):
            raise AgentError("MESSAGE and HTML: expected text")
        own_dir(host.path("/etc/fdeploy"), 0o755)
        own_dir(host.path(app.config_dir), 0o700)
        page_dir = app.root + "/maintenance"   # root's, readable by nginx
        own_dir(host.path(page_dir), 0o755)
        write_atomic(host.path(page_dir + "/index.html"), maintenance_page(message, page), 0o644)
        if before is None:
            by = os.environ.get("SUDO_USER") or os.environ.get("USER") or "root"
            write_atomic(conf, SNIPPET.format(since=time.strftime(TIME, time.gmtime()), by=re.sub(r"\s", "_", by),
                                              page=page_dir + "/index.html").encode(), 0o600)
        else:
            log("maintenance mode is already on (page updated)")
        site = read_regular(host.path("/etc/nginx/sites-enabled/fdeploy-%s.conf" % app.name)) or b""
        if ("include %s" % maintenance_conf(app)).encode() not in site:
            log("warning: the nginx site in force predates maintenance mode; it takes effect after the next pulumi up")
    elif before is not None:
        os.unlink(conf)
    checked = host.run(["nginx", "-t"], merge_output=True)
    if checked.returncode != 0:
        if before is None and mode == "on":
            os.unlink(conf)
        elif before is not None and mode == "off":
            write_atomic(conf, before, 0o600)
        log((checked.stdout or "").rstrip())
        raise AgentError("nginx rejects its configuration; maintenance mode unchanged (fix the file nginx -t names)")
    return {"mode": mode, "changed": (before is None) == (mode == "on")}


def _started(pid: str, proc: str) -> str:
    """ps's lstart of PID: when it started, local time."""
    try:
        with open(os.path.join(proc, pid, "stat")) as f:
            ticks = int(f.read().rpartition(")")[2].split()[19])
        with open(os.path.join(proc, "stat")) as f:
            btime = int(next(line.split()[1] for line in f if line.startswith("btime ")))
    except (OSError, ValueError, IndexError, StopIteration):
        return ""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(btime + ticks / os.sysconf("SC_CLK_TCK")))


def _process(pid: str, proc: str = "/proc") -> Dict[str, Any]:
    try:
        with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
        with open(os.path.join(proc, pid, "status")) as f:
            uid = int(next(line.split()[1] for line in f if line.startswith("Uid:")))
        user = pwd.getpwuid(uid).pw_name
    except (OSError, StopIteration, ValueError):
        return {"pid": int(pid), "user": "", "started": "", "command": ""}
    except KeyError:
        user = str(uid)
    return {"pid": int(pid), "user": user, "started": _started(pid, proc), "command": cmd}


def _held(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)   # releases a lock taken here


def _signal(pids: Iterable[str], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(int(pid), sig)
        except (ProcessLookupError, PermissionError):
            pass


def ops_lock(host: Host, params: Dict[str, Any], log: Log, lock_wait: int,
             sleep: Callable[[float], None] = time.sleep, proc: str = "/proc") -> Dict[str, Any]:
    """params APP, ACTION status|release. Held: a process holds the flock now (asked of the kernel,
    lock.holder_pids); owner: the deploy that took it (its record). release: SIGTERM to the holders,
    10 s, then SIGKILL."""
    name = apps.check_name(params.get("APP"))
    action = params.get("ACTION") or "status"
    if action not in ("status", "release"):
        raise AgentError("bad lock action %r (ACTION: status or release)" % (action,))
    path = lock.lock_path(host, name)
    held = _held(path)
    if held and action == "release":
        pids = lock.holder_pids(path, proc)
        _signal(pids, signal.SIGTERM)
        for _ in range(20):
            if not _held(path):
                break
            sleep(0.5)
        if _held(path):
            _signal(lock.holder_pids(path, proc), signal.SIGKILL)
            sleep(1)
        if _held(path):
            raise AgentError("the deploy lock of '%s' is still held (%s)" % (name, lock.holder(path, proc)))
        log("released the deploy lock of '%s' (stopped processes %s)" % (name, " ".join(pids)))
        held = False
    owner = (read_regular(path + ".owner") or b"").decode(errors="replace").split() if held else []
    if not (len(owner) == 3 and owner[0].isdigit()):
        owner = []
    return {"held": held, "owner": {"pid": int(owner[0]), "since": owner[1], "user": owner[2]} if owner else None,
            "processes": [_process(p, proc) for p in lock.holder_pids(path, proc)] if held else []}
