"""Files as root writes them: atomically (write, fsync, rename), never through a link."""
import os
import secrets
import stat

from .errors import AgentError


def read_regular(path: str) -> "bytes | None":
    """The content of the regular file PATH, or None when there is none. Never follows a symlink
    and never blocks on a FIFO (O_NOFOLLOW | O_NONBLOCK, then the type of what was opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, mode: int) -> bool:
    """PATH holds DATA with MODE afterwards; True when it changed. A temporary file beside it
    (created O_EXCL, never a link) is written, fsynced and renamed over PATH, then the folder is
    fsynced: a crash at any point leaves the old or the new file, never a part."""
    if read_regular(path) == data and stat.S_IMODE(os.lstat(path).st_mode) == mode:
        return False
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, ".%s.tmp-%s" % (os.path.basename(path), secrets.token_hex(6)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True


def own_dir(path: str, mode: int) -> None:
    """PATH is a real folder owned by this process's user (root on a server) with MODE: created when
    missing; a symlink or a folder someone else owns is refused, never chmod-ed through."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = -1
    try:
        if fd < 0 or os.fstat(fd).st_uid != os.geteuid():
            raise AgentError("%s is not a root-owned folder; refusing to use it (remove it, then deploy again)" % path)
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        if fd >= 0:
            os.close(fd)


# A POSIX default ACL (the kernel's xattr form: version 2, then tag, permissions, id per entry) of
# user::rwx group::rwx other::---. In a folder that has one, a new file gets the mode its creator
# asked for less the other bits, whatever the creator's umask: the umask is not applied.
_UNDEFINED_ID = 0xFFFFFFFF
GROUP_DEFAULT_ACL = (2).to_bytes(4, "little") + b"".join(
    tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + _UNDEFINED_ID.to_bytes(4, "little")
    for tag, perm in ((0x01, 7), (0x04, 7), (0x20, 0)))   # ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER


def group_default_acl(dir_fd: int) -> bool:
    """The folder open as DIR_FD gets GROUP_DEFAULT_ACL, through the descriptor (no path followed).
    True when it changed; False when it had it, or the file system keeps no ACLs."""
    try:
        if os.getxattr(dir_fd, "system.posix_acl_default") == GROUP_DEFAULT_ACL:
            return False
    except OSError:
        pass   # none yet (ENODATA), or no ACLs here (EOPNOTSUPP: the set below says so)
    try:
        os.setxattr(dir_fd, "system.posix_acl_default", GROUP_DEFAULT_ACL)
    except OSError:
        return False
    return True
