"""The base system for one app (components/base-system.ts; base.py decides): OS packages, the app
user, its two slot users (the releases run as them, alternately: slotuser.py; primary group the app
user's, which shares shared/), the build user (pip runs as it) and the directory layout:
  APP_ROOT/                 0750 root:<app>; nginx and the build user may only pass through (ACL x)
  APP_ROOT/releases/<id>/   one folder per release: code owned by root, .venv a link to venvs/
  APP_ROOT/venvs/<hash>/    one venv per requirements, built and owned by the build user
  APP_ROOT/shared/          the app's writable data: db/, backups/ (made by the app user itself)
  /etc/fdeploy/<app>/       root-only: the environment file, staged settings, state.json
  base-create   params APP, APP_ROOT, APP_USER, PACKAGES (space-separated), STACK: every setting and
                account checked before anything changes (a name taken by someone else changes nothing)
  base-delete   --app APP (pulumi destroy): the app's code and uploads go, never its data
  base-purge    params APP (fdeploy purge, after destroy): the data, settings, logs and users too
"""
import glob
import os
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import app as apps
from . import base, release
from .errors import AgentError
from .fsutil import own_dir
from .host import Host
from .lock import flock_within
from .slotuser import slot_users

Log = Callable[[str], None]
APT_LISTS = "/var/lib/apt/lists"


def must(host: Host, argv: Sequence[str], what: str) -> None:
    r = host.run(argv, merge_output=True)
    if r.returncode != 0:
        raise AgentError("%s failed (pulumi up runs it again): %s said %s" % (what, argv[0], (r.stdout or "").strip()[-400:]))


def apt_install(host: Host, packages: List[str], log: Log, sleep: Callable[[float], None] = time.sleep, wait: float = 900) -> None:
    """apt-get update and install, one such run at a time on the server: the first deploys of two
    apps on one server run their base steps at once, and apt refuses a second run while the first
    holds its lock (an flock on the root-owned lists folder, which apt itself never takes)."""
    log("installing %s" % " ".join(packages))
    fd = os.open(host.path(APT_LISTS), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flock_within(fd, wait, sleep, lambda: None,
                     lambda waited: AgentError("another package installation held %s for %ds; run pulumi up again" % (APT_LISTS, waited)))
        env = ["env", "DEBIAN_FRONTEND=noninteractive"]
        must(host, env + ["apt-get", "update", "-qq"], "apt-get update")
        must(host, env + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages,
             "installing the OS packages %s" % " ".join(packages))
    finally:
        os.close(fd)


def accounts(host: Host, c: Dict[str, Any], log: Log) -> None:
    """The app user first (the slot users' primary group), then its slot users and the build user:
    created, or marked when an earlier version made them (base.decide refuses a foreign name)."""
    settings_user = base.settings(host, c["app"]).get("APP_USER")
    todo = [(a, base.decide(host, c["app"], a, settings_user)) for a in base.accounts(c["app"], c["root"], c["user"])]
    for a, action in todo:
        if action == "create":
            group = ["--gid", a.group, "--no-user-group"] if a.group else []
            must(host, ["useradd", "--system", "--home-dir", a.home, "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--comment", a.mark] + group + [a.name], "creating the user %s" % a.name)
        elif action == "adopt":
            must(host, ["usermod", "--comment", a.mark, a.name], "marking the user %s" % a.name)


def layout(host: Host, c: Dict[str, Any]) -> None:
    root, user = c["root"], c["user"]
    # APP_ROOT holds the app's code, migrations and history: readable by the app's group only; a
    # server of the earlier layout (0755) gets the ACL before it loses its other bits, so nginx
    # never misses a static file on the way
    if os.path.islink(host.path(root)):
        raise AgentError("the app folder %s is a symlink; refusing to use it (remove the link, then pulumi up)" % root)
    if not os.path.isdir(host.path(root)):
        os.makedirs(os.path.dirname(host.path(root)), 0o755, exist_ok=True)
        os.mkdir(host.path(root), 0o750)
    must(host, ["setfacl", "-m", "u:www-data:x,u:%s:x" % base.build_user(c["app"]), root], "setting the ACL of %s" % root)
    must(host, ["chown", "root:" + user, root], "chown " + root)
    must(host, ["chmod", "0750", root], "chmod " + root)
    for d in (root + "/releases", "/etc/fdeploy"):
        own_dir(host.path(d), 0o755)
    own_dir(host.path("/etc/fdeploy/" + c["app"]), 0o700)
    # shared/ sits in the root-owned APP_ROOT, so it cannot be a planted symlink; what is inside it
    # is the app's, so its subfolders are made by the app user itself (root follows no path there)
    shared = root + "/shared"
    if os.path.islink(host.path(shared)):
        raise AgentError("%s is a symlink; refusing to use it (remove the link, then pulumi up)" % shared)
    must(host, ["install", "-d", "-m", "0770", "-o", user, "-g", user, shared], "creating " + shared)
    r = host.run(["runuser", "-u", user, "--", "install", "-d", "-m", "0770", shared + "/db", shared + "/backups"], merge_output=True)
    if r.returncode != 0:
        raise AgentError("could not create shared/db and shared/backups as %s: %s" % (user, (r.stdout or "").strip()[-300:]))


def base_create(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, home: Optional[str] = None) -> Dict[str, Any]:
    c = base.check(params)
    plan = base.base_plan(host, params, log, lock_wait)   # refuses a foreign account before anything changes
    if plan["missing"]:
        apt_install(host, plan["missing"], log)
    accounts(host, c, log)
    layout(host, c)
    home = home or release.bundle_home()   # the uploads in the SSH user's home: readable by that user only
    for d in (os.path.dirname(home), home):
        os.chmod(d, 0o700)
    base.base_settings(host, params, log, lock_wait)
    log("base ready: %s (user %s)" % (c["root"], c["user"]))
    return {"root": c["root"], "user": c["user"], "installed": plan["missing"], "slotUsers": plan["slotUsers"]}


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def base_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, home: Optional[str] = None) -> Dict[str, Any]:
    """The app's code, units' leftovers and uploads go; its data never does — shared/ (database,
    backups), the environment file, the app user and its slot users (owners of files there) stay,
    whatever any setting says (a value changed after the last deploy must not delete a database)."""
    name = apps.check_name(params.get("APP"))
    if not os.path.exists(host.path("/etc/fdeploy/%s.conf" % name)):
        log("nothing to remove for %s" % name)
        return {"removed": False}
    app = apps.load(host, name)
    home = home or release.bundle_home()
    for d in ("releases", "venvs", "current", "migrations", "slots", "tools"):
        remove(host.path("%s/%s" % (app.root, d)))
    for p in [home + "/uploads"] + glob.glob(glob.escape(home) + "/migrations-*"):
        remove(p)
    host.run(["userdel", base.build_user(name)])
    if host.which("docker"):   # runtime docker: the release images (the data is in shared/, mounted, never in an image)
        ids = sorted(set((host.run(["docker", "image", "ls", "-q", "fdeploy-" + name]).stdout or "").split()))
        if ids:
            host.run(["docker", "image", "rm", "-f"] + ids)
    stack = base.settings(host, name).get("STACK") or "<stack>"
    message = ("kept the data of %s: %s/shared (database, backups), %s/files (rendered shared files, if any) and %s; "
               "delete them with: npm run purge -- --stack %s --confirm %s" % (name, app.root, app.root, app.env_file, stack, name))
    log(message)
    return {"removed": True, "message": message}


def base_purge(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, home: Optional[str] = None) -> Dict[str, Any]:
    """Everything of the app this project created: its data and settings, its nginx logs, the
    backup's server id and pinned key, its users and the uploads in the SSH user's home (this
    bundle among them: the agent is loaded already). Refused while the app is still deployed."""
    name = apps.check_name(params.get("APP"))
    if not os.path.exists(host.path("/etc/fdeploy/%s.conf" % name)):
        message = "nothing to purge for %s" % name
        return {"purged": False, "message": message}
    app = apps.load(host, name)
    if os.path.lexists(host.path(app.unit_path("service"))):
        raise AgentError("app '%s' is still deployed on this server; run pulumi destroy first" % name)
    home = home or release.bundle_home()
    uploads = home if home.endswith("/.fdeploy/" + name) else ""   # only the app's own upload folder
    gone = [host.path(app.root), host.path(app.config_dir)]
    gone += glob.glob(host.path("/var/log/nginx/") + glob.escape("fdeploy-%s." % name) + "*")
    gone += glob.glob(host.path("/etc/fdeploy/") + glob.escape("%s.backup-" % name) + "*")
    for p in gone + ([uploads] if uploads else []):
        remove(p)
    slots = slot_users(app.user)
    for u in slots:
        entry = host.passwd(u)
        if entry is not None and entry[1] == "flask-deploy slot " + name:
            host.run(["userdel", u])
    host.run(["userdel", app.user])
    host.run(["userdel", base.build_user(name)])
    remove(host.path("/etc/fdeploy/%s.conf" % name))
    message = ("purged %s: %s (database, backups), %s (the environment file and its copies), /etc/fdeploy/%s.conf, the nginx logs "
               "/var/log/nginx/fdeploy-%s.*, the backup's server id, the uploads in %s and the users %s, %s and %s are gone"
               % (name, app.root, app.config_dir, name, name, home, app.user, " ".join(slots), base.build_user(name)))
    return {"purged": True, "message": message}
