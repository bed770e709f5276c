"""The base system's decisions (base_system.py runs them): its settings checked, which accounts to
create or adopt, which OS packages are missing, and the app's settings file.
The accounts the base step creates carry a mark (their comment field). An existing account is adopted
only with that mark, or when this app's root-owned settings file (written by an earlier version
of base.sh, which did not mark accounts) already names it as the app user; never root, a system
account or another app's user.
  base-plan      params APP, APP_ROOT, APP_USER, PACKAGES (space-separated), STACK (optional):
                 refused before anything changes; {"create": accounts to make, "adopt": accounts
                 to mark (usermod --comment), each "name:home:group:mark" ("" group: its
                 own), "missing": packages to install, "slotUsers"}
  base-settings  the same params: /etc/fdeploy/<app>.conf (APP_ROOT, APP_USER, STACK: the stack
                 kept when a caller does not say), which bash's load_settings and the agent's app.load read
"""
import hashlib
import re
import shlex
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from . import app as apps
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .slotuser import slot_users

Log = Callable[[str], None]
APP_ROOT = re.compile(r"/[A-Za-z0-9._/-]+")
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+-]+")
STACK = re.compile(r"[A-Za-z0-9._-]*")


class Account(NamedTuple):
    name: str
    mark: str
    home: str
    group: str   # its primary group ("": its own)

    def line(self) -> str:
        return ":".join((self.name, self.home, self.group, self.mark))   # no field holds a ":"


def build_user(app: str) -> str:
    """The account that builds the app's venvs: named by a hash of the app name (fits 32 characters)."""
    return "fdbuild-" + hashlib.sha256(app.encode()).hexdigest()[:10]


def settings(host: Host, app: str) -> Dict[str, str]:
    """The app's settings file as base.sh wrote it ({} when there is none)."""
    text = read_regular(host.path("/etc/fdeploy/%s.conf" % app))
    values = {}
    for line in (text or b"").decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", key):
            try:
                values[key] = " ".join(shlex.split(value))
            except ValueError:
                pass
    return values


def check(params: Dict[str, Any]) -> Dict[str, Any]:
    app = apps.check_name(params.get("APP"))
    root, user = str(params.get("APP_ROOT", "")), str(params.get("APP_USER", ""))
    if not APP_ROOT.fullmatch(root) or ".." in root:
        raise AgentError("bad app root %r (/srv/<flask-deploy:appName>)" % root)
    if not USER.fullmatch(user):
        raise AgentError("bad app user %r (flask-deploy:appName names it: a-z, 0-9, -, starting with a letter)" % user)
    packages = str(params.get("PACKAGES", "")).split()
    for p in packages:
        if not PACKAGE.fullmatch(p):
            raise AgentError("bad package name %r (a Debian package name, e.g. libpq5)" % p)
    stack = params.get("STACK")
    if stack is not None and not STACK.fullmatch(str(stack)):
        raise AgentError("bad stack name %r" % stack)
    return {"app": app, "root": root, "user": user, "packages": packages, "stack": stack}


def accounts(app: str, root: str, user: str) -> List[Account]:
    return ([Account(user, "flask-deploy app " + app, root, "")]
            + [Account(u, "flask-deploy slot " + app, root, user) for u in slot_users(user)]
            + [Account(build_user(app), "flask-deploy build " + app, "/nonexistent", "")])


def decide(host: Host, app: str, account: Account, settings_user: Optional[str]) -> str:
    """"create", "ok" or "adopt" for ACCOUNT; refused when the name belongs to someone else."""
    entry = host.passwd(account.name)
    if entry is None:
        return "create"
    uid, comment, home = entry
    if uid == 0:
        raise AgentError("account '%s' is root; refusing to run an app as it (choose another flask-deploy:appName)" % account.name)
    if comment == account.mark:
        return "ok"
    if account.mark == "flask-deploy app " + app and settings_user == account.name and home == account.home:
        return "adopt"   # created by an earlier version of base.sh, which did not mark accounts
    raise AgentError("account '%s' exists and was not created by flask-deploy for '%s'; choose another appName "
                     "(it names the app user and its slot users)" % (account.name, app))


def installed(host: Host, package: str) -> bool:
    r = host.run(["dpkg-query", "-W", "-f=${Status}", package])
    return r.returncode == 0 and "install ok installed" in (r.stdout or "")


def base_plan(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    c = check(params)
    settings_user = settings(host, c["app"]).get("APP_USER")
    todo: Dict[str, List[str]] = {"create": [], "adopt": []}
    for account in accounts(c["app"], c["root"], c["user"]):
        action = decide(host, c["app"], account, settings_user)
        if action != "ok":
            todo[action].append(account.line())
    missing = [p for p in c["packages"] if not installed(host, p)]
    return dict(todo, missing=missing, slotUsers=slot_users(c["user"]), buildUser=build_user(c["app"]))


def settings_text(root: str, user: str, stack: str) -> bytes:
    return ("APP_ROOT=%s\nAPP_USER=%s\nSTACK=%s\n" % (shlex.quote(root), shlex.quote(user), shlex.quote(stack))).encode()


def base_settings(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    c = check(params)
    stack = c["stack"] if c["stack"] else settings(host, c["app"]).get("STACK", "")
    if not STACK.fullmatch(stack):
        stack = ""
    own_dir(host.path("/etc/fdeploy"), 0o755)
    path = host.path("/etc/fdeploy/%s.conf" % c["app"])
    return {"changed": write_atomic(path, settings_text(c["root"], c["user"], stack), 0o644)}
