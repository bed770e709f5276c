"""The bind mounts of the app's containers (runtime docker): shared/ at its own path, each sharedDirs
folder at /app/<dir>.

dockerd resolves a mount source path as root and follows symlinks in it. shared/ is the app's: a
source under it is the app's to swap for a link (to /etc, /root, another app's data) between the
check and dockerd's use, so checking the path first is not enough. Instead a container only ever
mounts root-owned paths, /run/fdeploy-mnt/<app>/<slot>/<n> (root, 0700), and before it starts the
agent puts the app's folder there: each path component opened from / with O_PATH|O_NOFOLLOW|
O_DIRECTORY (a link is never followed), checked (a folder; root's and not writable by others up to
APP_ROOT, the app user's from shared/ on), and bind-mounted from /proc/self/fd/N — the very inode
that was checked, whatever the app renames or relinks afterwards. Verbs: docker-mounts (the slot
unit's ExecStartPre; docker-args for the release commands), docker-unmount (ExecStopPost, delete).
"""
import errno
import json
import os
import re
import stat
from typing import Any, Dict, List, Sequence, Tuple

from . import app as apps
from . import slotuser
from .app import App
from .errors import AgentError
from .fsutil import own_dir
from .host import Host

MOUNT_ROOT = "/run/fdeploy-mnt"
SHARED_DIR = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
SLOT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def check_shared_dirs(value: object) -> List[str]:
    dirs = str(value or "").split()
    for d in dirs:
        if not SHARED_DIR.fullmatch(d):
            raise AgentError("bad shared dir %r (flask-deploy:sharedDirs: a relative path)" % d)
    return dirs


def check_slot(slot: object) -> str:
    if not isinstance(slot, str) or not SLOT.fullmatch(slot):
        raise AgentError("bad slot %r (a-z, 0-9, -)" % (slot,))
    return slot


def slot_dir(app: App, slot: str) -> str:
    return "%s/%s/%s" % (MOUNT_ROOT, app.name, slot)


def sources(app: App, shared_dirs: Sequence[str]) -> List[Tuple[str, str, str]]:
    """(mount point name, source relative to shared/ ("" for shared/ itself), container path)."""
    return [("shared", "", app.root + "/shared")] + [("dir%d" % i, d, "/app/" + d) for i, d in enumerate(shared_dirs)]


def mount_args(app: App, slot: str, shared_dirs: Sequence[str]) -> List[str]:
    """The `docker run` flags that mount them; SLOT may be the unit's specifier %i. --mount, unlike
    -v, never creates a missing source."""
    out: List[str] = []
    for name, _, target in sources(app, shared_dirs):
        out += ["--mount", "type=bind,source=%s/%s,target=%s" % (slot_dir(app, slot), name, target)]
    return out


def _open_dir(host: Host, parent: int, name: str, shown: str) -> int:
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
    except OSError as e:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            what = "does not exist"
        else:
            what = "is a symlink" if stat.S_ISLNK(st.st_mode) else "is not a folder"
        if e.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
            what += " (%s)" % os.strerror(e.errno)
        raise AgentError("path %s %s; refusing to mount it into the app's container (a shared folder must be a real "
                         "folder: make it one, then deploy again)" % (shown, what))


def open_source(host: Host, app: App, uids: "set[int]", rel: str) -> int:
    """An O_PATH descriptor of APP_ROOT/shared/REL, every component checked (see the module's doc)."""
    fd = os.open(host.path("/"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    shown = ""
    try:
        parts = [p for p in app.root.split("/") if p] + ["shared"] + [p for p in rel.split("/") if p]
        root_parts = len([p for p in app.root.split("/") if p])
        for i, part in enumerate(parts):
            shown += "/" + part
            nfd = _open_dir(host, fd, part, shown)
            os.close(fd)
            fd = nfd
            st = os.fstat(fd)
            if i < root_parts:
                if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                    raise AgentError("path %s is not a folder only root can change (owner uid %d, mode %o); refusing to mount the app's data through it"
                                     % (shown, st.st_uid, stat.S_IMODE(st.st_mode)))
            elif st.st_uid not in uids:   # the app user or a slot user (slotuser.py)
                raise AgentError("path %s is not owned by the app user %s or its slot users (owner uid %d); refusing to mount it\n"
                                 "(flask-deploy:sharedDirs folders are the app's own: make it one, then deploy again)" % (shown, app.user, st.st_uid))
        return fd
    except BaseException:
        os.close(fd)
        raise


def _clear(host: Host, folder: str) -> None:
    """Detach whatever is mounted in FOLDER (mount points and stacked mounts), then remove it."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(folder, name)
        while host.unmount(path):
            pass
        os.rmdir(path)
    os.rmdir(folder)


def prepare(host: Host, app: App, slot: str, shared_dirs: Sequence[str]) -> List[str]:
    """The slot's mount points hold the app's checked folders afterwards; the container paths."""
    uids = slotuser.app_uids(host, app)
    fds = []
    try:
        for name, rel, target in sources(app, shared_dirs):   # all checked before anything is mounted
            fds.append((name, open_source(host, app, uids, rel), target))
        base = host.path(MOUNT_ROOT)
        own_dir(base, 0o755)
        own_dir(os.path.join(base, app.name), 0o700)
        folder = host.path(slot_dir(app, slot))
        _clear(host, folder)
        own_dir(folder, 0o700)
        for name, fd, _ in fds:
            point = os.path.join(folder, name)
            own_dir(point, 0o700)
            host.bind_mount("/proc/self/fd/%d" % fd, point)
        return [t for _, _, t in fds]
    finally:
        for _, fd, _ in fds:
            os.close(fd)


def release(host: Host, app: App, slot: str = "") -> None:
    """Detach the mounts of SLOT (every slot's when empty)."""
    base = host.path("%s/%s" % (MOUNT_ROOT, app.name))
    if slot:
        _clear(host, os.path.join(base, slot))
    elif os.path.isdir(base) and not os.path.islink(base):
        for s in os.listdir(base):
            _clear(host, os.path.join(base, s))


def unit_input(app: App, shared_dirs: Sequence[str]) -> str:
    """The unit's StandardInputText= (its %i is the slot): the parameters of both verbs."""
    return json.dumps({"APP": app.name, "SLOT": "%i", "SHARED_DIRS": " ".join(shared_dirs)}, sort_keys=True)


def docker_mounts(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """params APP, SLOT, SHARED_DIRS. No deploy lock: it runs inside the switch's, as a unit's ExecStartPre."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    return {"mounted": prepare(host, app, check_slot(params.get("SLOT")), check_shared_dirs(params.get("SHARED_DIRS")))}


def docker_unmount(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """params APP, SLOT (optional: all the app's slots)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    slot = params.get("SLOT")
    release(host, app, check_slot(slot) if slot else "")
    return {}
