"""The systemd template units that run one slot (%i) of the app:
  fdeploy-<app>@.socket   systemd owns the listening socket /run/fdeploy-<app>/<slot>.sock (nginx
                          proxies to it); it outlives the service, so a restart refuses no
                          connection: they wait in the backlog for the new Gunicorn.
  fdeploy-<app>@.service  Gunicorn for the slot's code, APP_ROOT/slots/<slot> (a symlink to a
                          release, set by activate.sh), inheriting the socket; with runtime docker,
                          Gunicorn in a container of the slot's release image instead.
"""
import ast
import os
import re
from typing import List, Sequence

from . import mounts
from .app import App
from .errors import AgentError

HARDENING = os.path.join(os.path.dirname(__file__), "hardening.conf")
AGENT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))   # …/scripts-<hash>/agent


def hardening(app_root: str) -> str:
    """The sandbox of every process of the app (slots, preflight, release commands, jobs), as unit
    lines; lib.sh `hardening` reads the same file."""
    with open(HARDENING) as f:
        return f.read().replace("@APP_ROOT@", app_root)


def check_app_module(target: object) -> str:
    """One of Gunicorn's forms: module, module:name, module:factory(literal args)."""
    ok = False
    if isinstance(target, str) and "\n" not in target:
        mod, _, obj = target.partition(":")
        try:
            e = ast.parse(obj or "application", mode="eval").body
            if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
                for a in e.args + [k.value for k in e.keywords]:
                    ast.literal_eval(a)
                ok = all(k.arg for k in e.keywords)
            else:
                ok = isinstance(e, ast.Name)
        except (SyntaxError, ValueError):
            ok = False
        ok = ok and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", mod) is not None
    if not ok:
        raise AgentError("bad app module %r (flask-deploy:appModule: module:name, module, or module:factory(literal args))" % (target,))
    return target


def unit_word(text: str) -> str:
    """TEXT as one word of a systemd command line: as it is with only name characters, else
    double-quoted with systemd's escapes, so that systemd passes it on verbatim."""
    if re.fullmatch(r"[A-Za-z0-9_.:()]+", text):
        return text
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")


def docker_app_args(app: App, uid: int, gid: int, env_names: Sequence[str], shared_dirs: Sequence[str], slot: str) -> List[str]:
    """The `docker run` flags of every container of the app (slots, release commands): the app's
    uid, a read-only root filesystem, no new privileges, no capabilities; the environment by name
    (the values come from systemd reading the root-only file); shared/ at its own path and each
    sharedDirs folder at /app/<dir>, through the slot's root-owned mount points (mounts.py)."""
    out = ["--user", "%d:%d" % (uid, gid), "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m",
           "--security-opt", "no-new-privileges", "--cap-drop", "ALL", "-e", "RELEASE_ID"]
    for name in env_names:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            raise AgentError("bad environment name %r (flask-deploy:env / secrets keys: A-Z, 0-9, _)" % name)
        out += ["-e", name]
    return out + mounts.mount_args(app, slot, mounts.check_shared_dirs(" ".join(shared_dirs)))


def socket_unit(app: App) -> str:
    return """# Managed by flask-deploy (fdeploy-agent unit-stage). Do not edit: the next deploy rewrites it.
[Unit]
Description=Socket of Flask app {name}, slot %i

[Socket]
ListenStream=/run/fdeploy-{name}/%i.sock
SocketUser={user}
SocketGroup=www-data
SocketMode=0660
DirectoryMode=0755
Backlog=4096

[Install]
WantedBy=sockets.target
""".format(name=app.name, user=app.user)


def gunicorn_args(workers: int, timeout: int) -> List[str]:
    """The options the slots run Gunicorn with (python runtime), besides the ones that depend on the
    release's Gunicorn version ($GUNICORN_FLAGS of the slot's environment file: gunicorn.py); the
    preflight checks them all against the release's own Gunicorn."""
    return ["--workers", str(workers), "--timeout", str(timeout), "--graceful-timeout", "30",
            "--access-logfile", "-", "--error-logfile", "-"]


def python_unit(app: App, workers: int, timeout: int, target: str) -> str:
    slots = app.slots
    return """# Managed by flask-deploy (fdeploy-agent unit-stage). Do not edit: the next deploy rewrites it.
[Unit]
Description=Flask app {name}, slot %i (Gunicorn)
Requires=fdeploy-{name}@%i.socket
After=network.target fdeploy-{name}@%i.socket

[Service]
Type=simple
User={user}
Group={user}
WorkingDirectory={slots}/%i
EnvironmentFile={env}
EnvironmentFile={slots}/%i.env
ExecStart={slots}/%i/.venv/bin/gunicorn {gargs} $GUNICORN_FLAGS {target}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
KillMode=mixed
TimeoutStopSec=40
{hardening}
[Install]
WantedBy=multi-user.target
""".format(name=app.name, user=app.user, slots=slots, env=app.env_file, gargs=" ".join(gunicorn_args(workers, timeout)),
           target=unit_word(target), hardening=hardening(app.root))


# The mount steps run in the host's mount namespace, where dockerd resolves the mount points: even
# unconfined (+), a step of a unit with a sandbox runs in the unit's own namespace, whose mounts
# dockerd never sees (measured: the container then got the empty mount point).
HOST_MOUNT_NS = "/usr/bin/nsenter --mount=/proc/1/ns/mnt --"


def docker_unit(app: App, workers: int, timeout: int, target: str, args: Sequence[str], memory: str, cpus: str,
                shared_dirs: Sequence[str]) -> str:
    """Gunicorn binds /run/fdeploy-<app>/c-<slot>/gunicorn.sock (the only app-writable folder under
    /run/fdeploy-<app>: <app>:www-data 0750, so the socket can be 0777); <slot>.sock, the path
    nginx's live.sock and the health check use, is a root-owned symlink to it. Every start (a
    deploy's, a restart, the boot) first mounts the app's checked folders at the slot's mount points
    (the agent of the deploy that wrote the unit: docker-mounts; StandardInputText= is its
    parameters, %i the slot; docker run reads no stdin without -i); every stop detaches them.
    The folder and mount steps (+) run unconfined as root, in the host's mount namespace; the Docker
    client (root: the Docker socket is root's) in the app's sandbox, without capabilities or a
    network (the socket is a file), its home an empty tmpfs (no Docker CLI config)."""
    limits = ""
    if memory:
        if not re.fullmatch(r"[1-9][0-9]{0,5}[kmg]", memory):
            raise AgentError("bad memory limit %r (flask-deploy:docker.memory: e.g. 512m, 1g)" % memory)
        limits += " --memory " + memory
    if cpus:
        if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3})?", cpus):
            raise AgentError("bad cpu limit %r (flask-deploy:docker.cpus: e.g. 1.5)" % cpus)
        limits += " --cpus " + cpus
    run = "/run/fdeploy-" + app.name
    return """# Managed by flask-deploy (fdeploy-agent unit-stage, runtime docker). Do not edit: the next deploy rewrites it.
[Unit]
Description=Flask app {name}, slot %i (Gunicorn in Docker)
Requires=docker.service
After=network.target docker.service

[Service]
Type=simple
EnvironmentFile={env}
EnvironmentFile={slots}/%i.env
ExecStartPre=+/bin/sh -c 'docker rm -f fdeploy-{name}-%i >/dev/null 2>&1 || true'
ExecStartPre=+/usr/bin/install -d -m 0755 {run}
ExecStartPre=+/usr/bin/install -d -m 0750 -o {user} -g www-data {run}/c-%i
ExecStartPre=+/bin/rm -f {run}/c-%i/gunicorn.sock
ExecStartPre=+/bin/ln -sfn c-%i/gunicorn.sock {run}/%i.sock
StandardInputText={params}
ExecStartPre=+{host_ns} /usr/bin/python3 -I -B {agent} docker-mounts
ExecStart=/usr/bin/docker run --rm --name fdeploy-{name}-%i {args}{limits} --log-opt max-size=10m --log-opt max-file=2 -v {run}/c-%i:/run/fdeploy fdeploy-{name}:${{RELEASE_ID}} gunicorn --bind unix:/run/fdeploy/gunicorn.sock --umask 0000 --workers {workers} --timeout {timeout} --graceful-timeout 30 --worker-tmp-dir /tmp --access-logfile - --error-logfile - --no-control-socket {target}
ExecStop=/bin/sh -c 'docker stop -t 35 fdeploy-{name}-%i >/dev/null 2>&1 || true'
ExecStopPost=+{host_ns} /usr/bin/python3 -I -B {agent} docker-unmount
Restart=on-failure
RestartSec=2
KillMode=mixed
TimeoutStopSec=45
{hardening}PrivateNetwork=yes
ProtectHome=tmpfs

[Install]
WantedBy=multi-user.target
""".format(name=app.name, user=app.user, slots=app.slots, env=app.env_file, run=run, args=" ".join(args), limits=limits,
           workers=workers, timeout=timeout, target=unit_word(target), hardening=hardening(app.root),
           params=mounts.unit_input(app, shared_dirs), agent=unit_word(AGENT), host_ns=HOST_MOUNT_NS)
