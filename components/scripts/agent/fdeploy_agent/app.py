"""One app on this server: its name, the settings the base step recorded (base-create), and where its files live."""
import os
import re
import shlex
from dataclasses import dataclass

from .errors import AgentError
from .fsutil import read_regular
from .host import Host

NAME = re.compile(r"[a-z][a-z0-9-]{1,30}")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AgentError("bad app name %r (flask-deploy:appName: 2-31 characters a-z, 0-9, -, starting with a letter)" % (name,))
    return name


@dataclass(frozen=True)
class App:
    name: str
    root: str   # APP_ROOT, /srv/<app>
    user: str   # APP_USER

    @property
    def config_dir(self) -> str:
        """/etc/fdeploy/<app>: root-only (0700); the environment file, staged settings, the state file."""
        return "/etc/fdeploy/%s" % self.name

    @property
    def env_file(self) -> str:
        """The environment file in force (systemd's EnvironmentFile= of every slot)."""
        return self.config_dir + "/env"

    @property
    def slots(self) -> str:
        return self.root + "/slots"

    def unit_path(self, kind: str) -> str:
        """The slots' template units: kind "service" or "socket"."""
        return "/etc/systemd/system/fdeploy-%s@.%s" % (self.name, kind)


class NotDeployed(AgentError):
    exit_status = 3   # fdeploy (cli/lib/stack.ts): "no app deployed"


def deployed(host: Host, name: object) -> App:
    """The app, or NotDeployed (exit 3) when it has no base system here: what fdeploy's verbs load."""
    name = check_name(name)
    if read_regular(host.path("/etc/fdeploy/%s.conf" % name)) is None:
        raise NotDeployed("app '%s' is not deployed on this server (pulumi up deploys it)" % name)
    return load(host, name)


def load(host: Host, name: str) -> App:
    """The app as the base step (base-create) set it up (/etc/fdeploy/<app>.conf: APP_ROOT, APP_USER)."""
    check_name(name)
    text = read_regular(host.path("/etc/fdeploy/%s.conf" % name))
    if text is None:
        raise AgentError("app '%s' has no base system on this server yet (the base step runs first: pulumi up)" % name)
    values = {}
    for line in text.decode().splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", key):
            values[key] = " ".join(shlex.split(value))
    root, user = values.get("APP_ROOT", ""), values.get("APP_USER", "")
    if not re.fullmatch(r"/[A-Za-z0-9._/-]+", root) or not NAME.fullmatch(user) or ".." in root.split(os.sep):
        raise AgentError("/etc/fdeploy/%s.conf is damaged (APP_ROOT %r, APP_USER %r); run pulumi up to write it again" % (name, root, user))
    return App(name=name, root=root, user=user)
