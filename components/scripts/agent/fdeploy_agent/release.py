"""Releases on this server: /srv/<app>/releases/<id>, where the id is the hash of the release's
files (components/upload.ts hashFiles: sha256 over each relative path, NUL, content, NUL, in path
order; the first 12 hex characters)."""
import hashlib
import json
import os
import re
import time
from typing import Any, Dict, Optional, Set

from . import app as apps
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .host import Host


def tree_hash(folder: str) -> str:
    files = sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names)
    h = hashlib.sha256()
    for f in files:
        with open(os.path.join(folder, f), "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()[:12]


# --- installing a release (install.py: release-install) ---
RUNTIMES = ("python", "docker")
MARKER = ".fdeploy-release.json"


def check_id(rid: Any) -> str:
    if not isinstance(rid, str) or not re.fullmatch(r"[0-9a-f]{12}", rid):
        raise AgentError("bad release id %r" % (rid,))
    return rid


def check_runtime(runtime: Any) -> str:
    runtime = runtime or "python"
    if runtime not in RUNTIMES:
        raise AgentError("bad runtime %r (flask-deploy:runtime: python or docker)" % (runtime,))
    return str(runtime)


def server_link(host: Host, path: str, hops: int = 40) -> Optional[str]:
    """PATH with every link on it followed (as `readlink -e` on the server): targets are server
    paths, read under this host's root. None when it does not exist, a link dangles or loops."""
    done, todo = "/", [p for p in path.split("/") if p]
    while todo:
        part = todo.pop(0)
        if part in (".", ""):
            continue
        cur = os.path.dirname(done) if part == ".." else os.path.join(done, part)
        local = host.path(cur)
        if os.path.islink(local):
            hops -= 1
            if hops < 0:
                return None
            target = os.readlink(local)
            todo = [p for p in target.split("/") if p] + todo
            if target.startswith("/"):
                done = "/"
            continue
        if not os.path.lexists(local):
            return None
        done = cur
    return done


def installed(host: Host, dest: str, runtime: str) -> bool:
    """A release is installed when its marker is there and, for the python runtime, its venv's gunicorn."""
    if read_regular(host.path(dest + "/" + MARKER)) is None:
        return False
    if runtime == "docker":
        return True
    gunicorn = server_link(host, dest + "/.venv/bin/gunicorn")
    return gunicorn is not None and os.path.isfile(host.path(gunicorn)) and os.access(host.path(gunicorn), os.X_OK)


def plan(host: Host, app: apps.App, rid: str, runtime: str, pinned: bool, upload: str) -> Dict[str, Any]:
    """What release-install does with release RID: nothing ("installed"), "copy" the upload, or only
    build the "venv" of a release the docker runtime installed; refusals before anything changes."""
    dest = "%s/releases/%s" % (app.root, rid)
    if installed(host, dest, runtime):
        return {"action": "installed"}
    has_marker = read_regular(host.path(dest + "/" + MARKER)) is not None
    has_upload = os.path.isdir(upload)
    if not has_upload and not has_marker:
        if pinned:
            try:
                kept = sorted(os.listdir(host.path(app.root + "/releases")))
            except OSError:
                kept = []
            raise AgentError("release %s (pinned by the stack's `release` setting) is not kept on this server (kept: %s)\n"
                             "pick a kept one, or `pulumi config rm release` to deploy appDir" % (rid, " ".join(kept)))
        raise AgentError("upload %s is missing" % upload)
    return {"action": "venv" if has_marker else "copy"}


def bundle_home() -> str:
    """~/.fdeploy/<app> of the SSH user: this agent is <home>/scripts-<hash>/agent/fdeploy_agent."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def venv_key(requirements: bytes, python_vv: str) -> str:
    """The venv folder's name: a hash of requirements.txt and `python3 -VV`, exactly as release.sh
    computed it (`{ cat requirements.txt; python3 -VV; } | sha256sum | cut -c1-12`), so that a
    server upgraded in place reuses the venvs it built."""
    return hashlib.sha256(requirements + python_vv.encode()).hexdigest()[:12]


def plain_requirements(text: str) -> Optional[Set[str]]:
    """The requirement lines of TEXT, trimmed, comments dropped; None unless every one is a plain
    `name[extras] <op> version` (no -e/-r/-c/--option, path, URL, `@` reference or continuation)."""
    lines = {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}
    if any(line.startswith("-") or re.search(r"[/@:\\]", line) for line in lines):
        return None
    return lines


def seed(host: Host, app: apps.App, venv: str, version: str, requirements: str) -> str:
    """The live release's venv, when REQUIREMENTS only add plain lines to its and its Python is
    VERSION: the new venv starts as a copy of it and pip installs only what was added. Anything else
    (a line removed or changed, an option, a path) builds from nothing: "" (no package lingers)."""
    live = server_link(host, app.root + "/current")
    old = server_link(host, live + "/.venv") if live else None
    if not live or not old or old == venv or read_regular(host.path(old + "/.fdeploy-built")) is None:
        return ""
    live_req = read_regular(host.path(live + "/requirements.txt"))
    cfg = (read_regular(host.path(old + "/pyvenv.cfg")) or b"").decode(errors="replace")
    if live_req is None or not re.search(r"^version(_info)? = %s$" % re.escape(version), cfg, re.M):
        return ""
    o, n = plain_requirements(live_req.decode(errors="replace")), plain_requirements(requirements)
    return old if o is not None and n is not None and o <= n else ""


# venvs/<this>: the app's one pip (venv_build.py "pip"), which every venv build runs; no release links
# to it, and prune keeps it (rebuilding it costs an ensurepip, ~3-6 s, in the next deploy's build)
PIP_VENV = ".pip"


def venv_plan(host: Host, app: apps.App, rid: str, python_vv: str) -> Dict[str, Any]:
    dest = "%s/releases/%s" % (app.root, rid)
    req = read_regular(host.path(dest + "/requirements.txt"))
    if req is None:
        raise AgentError("release %s has no requirements.txt (a regular file at the top of appDir); add one listing gunicorn and your"
                         " dependencies" % rid)
    venvs = app.root + "/venvs"
    venv = "%s/%s" % (venvs, venv_key(req, python_vv))
    built = read_regular(host.path(venv + "/.fdeploy-built")) is not None
    version = python_vv.split()[1] if len(python_vv.split()) > 1 else ""
    return {"venv": venv, "built": built, "pipvenv": "%s/%s" % (venvs, PIP_VENV),
            "pip_built": read_regular(host.path("%s/%s/.fdeploy-built" % (venvs, PIP_VENV))) is not None,
            "seed": "" if built else seed(host, app, venv, version, req.decode(errors="replace"))}


def python_vv(host: Host) -> str:
    """`python3 -VV` of the server (part of a venv's key: another Python, another venv)."""
    r = host.run(["python3", "-VV"])
    if r.returncode != 0 or not r.stdout.startswith("Python "):
        raise AgentError("python3 -VV failed on this server; install Debian's python3 (pulumi up's base step does) and deploy again\n%s"
                         % (r.stdout + r.stderr).strip())
    return r.stdout


def write_mark(host: Host, app: apps.App, rid: str, runtime: str, seconds: int) -> Dict[str, Any]:
    """The release's marker, written last: without it a release counts as half-installed."""
    mark: Dict[str, Any] = {"id": rid, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "install_seconds": seconds}
    if runtime == "docker":
        mark["runtime"] = "docker"
    write_atomic(host.path("%s/releases/%s/%s" % (app.root, rid, MARKER)), (json.dumps(mark) + "\n").encode(), 0o644)
    return mark
