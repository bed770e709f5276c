"""Staging the settings a release runs with: the environment file and the slots' units. A deploy
only stages them here, as <name>.desired in /etc/fdeploy/<app>/ (root, 0600 in a 0700 folder);
the switch (slots.py settings_from desired) puts them in force together with the release,
and puts the live ones back if the release fails. So a deploy that fails before the switch — in a
migration, a release command — leaves in force exactly what served before."""
import re
from typing import Any, Callable, Dict

from . import app as apps
from . import lease
from . import state as states
from . import mounts, pg_pin, units
from .errors import AgentError
from .fsutil import own_dir, write_atomic
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]


def _stage(host: Host, app: apps.App, name: str, files: Dict[str, bytes], info: Dict[str, Any]) -> Dict[str, Any]:
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path(app.config_dir), 0o700)
    changed = False
    for fname, content in files.items():
        changed = write_atomic(host.path("%s/%s" % (app.config_dir, fname)), content, 0o600) or changed
    state = states.load(host, app)
    rev = states.revision(state, b"\0".join(files[k] for k in sorted(files)))
    if state["staged"].get(name) != dict(info, revision=rev):
        state["staged"][name] = dict(info, revision=rev)
        states.save(host, app, state)
    return {"changed": changed, "revision": rev}


def env_stage(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params: APP, ENV (the file's content: secrets; never printed, never on a command line)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    env = params.get("ENV")
    if not isinstance(env, str) or "\0" in env:
        raise AgentError("ENV must be the environment file's text")
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        return _stage(host, app, "env", {"env.desired": env.encode()}, {})


def _int(params: Dict[str, Any], key: str, pattern: str, setting: str) -> int:
    v = str(params.get(key, ""))
    if not re.fullmatch(pattern, v):
        raise AgentError("bad %s %r (flask-deploy:%s)" % (key.lower().replace("_", " "), v, setting))
    return int(v)


def unit_stage(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """params: APP, WORKERS, APP_MODULE, TIMEOUT; RUNTIME docker with ENV_NAMES (space-separated
    names the environment file sets), SHARED_DIRS (space-separated), MEMORY, CPUS, PG_PIN (optional: the
    pinned CA file, pg_pin.unit_mount_args)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    workers = _int(params, "WORKERS", r"[0-9]{1,2}", "workers")
    timeout = _int(params, "TIMEOUT", r"[0-9]{1,4}", "proxyTimeoutSeconds")
    target = units.check_app_module(params.get("APP_MODULE"))
    runtime = params.get("RUNTIME", "python")
    if runtime not in ("python", "docker"):
        raise AgentError("bad runtime %r (flask-deploy:runtime: python or docker)" % runtime)
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        if runtime == "docker":
            if not host.which("docker"):
                raise AgentError("runtime docker: no docker on the server (the base system installs docker.io; run pulumi up again)")
            uid, gid = host.user_ids(app.user)
            dirs = mounts.check_shared_dirs(params.get("SHARED_DIRS"))
            args = units.docker_app_args(app, uid, gid, str(params.get("ENV_NAMES", "")).split(), dirs, "%i") + pg_pin.unit_mount_args(host, app.name, params.get("PG_PIN"))
            service = units.docker_unit(app, workers, timeout, target, args, str(params.get("MEMORY", "")), str(params.get("CPUS", "")), dirs)
            options: list = []
        else:
            service = units.python_unit(app, workers, timeout, target)
            options = units.gunicorn_args(workers, timeout)
        own_dir(host.path(app.slots), 0o755)
        return _stage(host, app, "unit", {"socket.desired": units.socket_unit(app).encode(), "service.desired": service.encode()},
                      {"runtime": runtime, "appModule": target, "gunicornArgs": options})


RELEASE_COMMANDS_SLOT = "release-cmd"


def docker_args(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """For release-commands.sh (inside its deploy lock): the containers' `docker run` flags (params
    APP, ENV_NAMES, SHARED_DIRS), their mounts made (mounts.py; docker-unmount with SLOT release-cmd
    detaches them)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    uid, gid = host.user_ids(app.user)
    dirs = mounts.check_shared_dirs(params.get("SHARED_DIRS"))
    args = units.docker_app_args(app, uid, gid, str(params.get("ENV_NAMES", "")).split(), dirs, RELEASE_COMMANDS_SLOT) + pg_pin.mount_args(host, app.name)
    mounts.prepare(host, app, RELEASE_COMMANDS_SLOT, dirs)
    return {"args": args}
