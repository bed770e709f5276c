"""The Unix users the app's releases run as (issue 25, item 3). A release's processes — its slot,
preflight, migrations and release commands — run as one of two slot users, never the one the live
slot runs as: the live release can then neither signal, trace nor read them (different uid; no
PID namespace needed). Each deploy takes the slot user the live slot does not run as, so the
users alternate: blue-green's idle slot, restart's preflight and restarted slot alike.
  <app user>    owns shared/, runs Litestream and the jobs; a live slot deployed before slot users
                existed runs as it (no drop-in) until the next deploy
  <app user>_1, <app user>_2   the slot users (primary group: the app user's group, which shares
                shared/: files there are group-writable, see shared_modes)
A slot's user is a root-owned drop-in of its unit instance (slot_dropin), written by the switch.
  new-release-user  params APP: the slot user for a new release (the other one than the live slot's),
                    with its leftover processes killed and shared/ group-writable; {"user", "live"}
  slot-user         params APP, SLOT, USER: SLOT runs as USER from its next start (drop-in; "": none)
"""
import hashlib
import os
import re
import stat
from typing import Any, Callable, Dict, List, Set

from . import app as apps
from .errors import AgentError
from .fsutil import group_default_acl, own_dir, read_regular, write_atomic
from .host import Host

Log = Callable[[str], None]
SLOT = re.compile(r"[a-z][a-z0-9-]{0,30}")
MAX_DEPTH = 64


def slot_users(app_user: str) -> List[str]:
    """The two slot users of APP_USER: <app user>_1 and _2, or, where that exceeds 32 characters,
    its first 23 characters, "-" and a hash (so that two long names sharing a prefix differ). The
    "_" keeps them apart from every app user (app names have none)."""
    stem = app_user if len(app_user) <= 30 else "%s-%s" % (app_user[:23], hashlib.sha256(app_user.encode()).hexdigest()[:6])
    return [stem + "_1", stem + "_2"]


def slot_dropin(app: apps.App, slot: str) -> str:
    return "/etc/systemd/system/fdeploy-%s@%s.service.d/50-slot-user.conf" % (app.name, slot)


def dropin_text(app: apps.App, user: str) -> bytes:
    return ("# Managed by flask-deploy (fdeploy-agent slot-user): the user this slot runs as\n"
            "[Service]\nUser=%s\nGroup=%s\n" % (user, app.user)).encode()


def user_of_slot(host: Host, app: apps.App, slot: str) -> str:
    """The user SLOT runs as: its drop-in's, else the app user (a slot started before slot users)."""
    text = read_regular(host.path(slot_dropin(app, slot)))
    m = re.search(r"^User=(\S+)$", (text or b"").decode(errors="replace"), re.M)
    return m.group(1) if m else app.user


def live_slot(host: Host, app: apps.App) -> str:
    """The slot nginx proxies to ("" before the first activation), as the switch reads it."""
    text = read_regular(host.path(app.slots + "/live"))
    if text is not None:
        return text.decode(errors="replace").strip()
    return "main" if os.path.islink(host.path(app.slots + "/main")) else ""


def running_uid(host: Host, unit: str) -> "int | None":
    """The uid of UNIT's main process, None when it has none."""
    r = host.run(["systemctl", "show", "-p", "MainPID", "--value", unit])
    pid = (r.stdout or "").strip()
    if r.returncode != 0 or not pid.isdigit() or pid == "0":
        return None
    status = read_regular(host.path("/proc/%s/status" % pid)) or b""
    m = re.search(rb"^Uid:\s+(\d+)", status, re.M)
    return int(m.group(1)) if m else None


def live_user(host: Host, app: apps.App) -> str:
    """The user the live slot runs as ("" when nothing is live): its running process's, which a
    deploy killed between writing a drop-in and restarting the slot cannot make wrong; else (not
    running) its drop-in's."""
    slot = live_slot(host, app)
    if not SLOT.fullmatch(slot):
        return ""
    uid = running_uid(host, "fdeploy-%s@%s.service" % (app.name, slot))
    for name in [app.user] + slot_users(app.user):
        try:
            if uid is not None and host.user_ids(name)[0] == uid:
                return name
        except KeyError:
            pass
    return user_of_slot(host, app, slot)


def next_user(app: apps.App, live: str) -> str:
    """The slot user a new release runs as: the one the live slot does not run as."""
    first, second = slot_users(app.user)
    return second if live == first else first


def app_uids(host: Host, app: apps.App) -> Set[int]:
    uids = set()
    for name in [app.user] + slot_users(app.user):
        try:
            uids.add(host.user_ids(name)[0])
        except KeyError:
            pass
    return uids


def shared_modes(host: Host, app: apps.App, log: Log) -> int:
    """Every folder and regular file in shared/ owned by one of the app's users gets the group bits
    its owner has (0700 -> 0770, 0600 -> 0660): the slot users share it through the app's group.
    Each such folder also gets the default ACL group::rwx other::--- (fsutil.GROUP_DEFAULT_ACL), so
    what is made there later is group-writable whatever its maker's umask: a release of a main before
    slot users runs with UMask=0077 until the switch, and SQLite creates a database's -shm with the
    database's mode less that umask (it puts the mode back only while the file is empty, which another
    worker can beat), a -shm the new release's migration, as a slot user, could not open.
    A folder gets its ACL before it is listed: what is made in it after the listing inherits it.
    Root never follows a link here: each entry is opened O_NOFOLLOW relative to its folder's
    descriptor and changed through that descriptor; what is neither a folder nor a regular file is
    left alone. Returns how many entries changed."""
    uids = app_uids(host, app)
    changed = 0

    def fix(fd: int) -> None:
        nonlocal changed
        st = os.fstat(fd)
        if st.st_uid in uids and (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            mode = stat.S_IMODE(st.st_mode)
            want = mode | ((mode & 0o700) >> 3)
            if want != mode:
                os.fchmod(fd, want)
                changed += 1
            if stat.S_ISDIR(st.st_mode) and group_default_acl(fd):
                changed += 1

    def walk(dfd: int, depth: int) -> None:
        fix(dfd)
        if depth >= MAX_DEPTH:
            log("shared/: folders deeper than %d levels left as they are" % MAX_DEPTH)
            return
        for name in os.listdir(dfd):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd)
            except OSError:
                continue   # a symlink (ELOOP), a socket (ENXIO), or gone meanwhile
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    walk(fd, depth + 1)
                else:
                    fix(fd)
            finally:
                os.close(fd)

    try:
        top = os.open(host.path(app.root + "/shared"), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        walk(top, 0)
    finally:
        os.close(top)
    if changed:
        log("shared/: %d folder(s) and file(s) made group-writable for the app's slot users" % changed)
    return changed


def _user(host: Host, name: str) -> None:
    try:
        host.user_ids(name)
    except KeyError:
        raise AgentError("the slot user %s does not exist on this server (the base step makes it; run pulumi up)" % name)


def new_release_user(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    live = live_user(host, app)
    user = next_user(app, live)
    _user(host, user)
    # nothing of this user runs now (the live slot runs as the other one): what does is left over
    # (e.g. a shell of `fdeploy exec` from two deploys ago) and could signal this release's processes
    host.kill_user(user)
    shared_modes(host, app, log)
    return {"user": user, "live": live, "users": [user, live or app.user]}


def set_slot_user(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Runs inside the switch's lock (no lock of its own)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    slot, user = str(params.get("SLOT", "")), str(params.get("USER", ""))
    if not SLOT.fullmatch(slot):
        raise AgentError("bad slot %r" % slot)
    path = host.path(slot_dropin(app, slot))
    if user == "":   # runtime docker: the unit runs docker as root, the container has its own --user
        changed = os.path.lexists(path)
        if changed:
            os.unlink(path)
    else:
        if user not in [app.user] + slot_users(app.user):
            raise AgentError("%r is not a user of app %s" % (user, app.name))
        _user(host, user)
        own_dir(os.path.dirname(path), 0o755)
        changed = write_atomic(path, dropin_text(app, user), 0o644)
    if changed:
        host.run(["systemctl", "daemon-reload"])
    return {"changed": changed}
