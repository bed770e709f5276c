"""Installing a release (the Release step):
  release-install  params APP, RELEASE_ID, PINNED (1: a rollback pinned a kept release; nothing is
                   uploaded), RUNTIME (python, the default, or docker): {"action" ("installed":
                   nothing to do, "copy", "venv"), "venv", "seconds"}
~/.fdeploy/<app>/uploads/<id> is copied to releases/<id> (root-owned) and its .venv linked to the
venv of its requirements, venvs/<key> (release.py), which the app's unprivileged build user builds
(pip runs every package's build code: never as root) in a sandboxed transient unit that can write
only that venv, unless another release has already. A release is content-addressed (its id is a
hash of its files), so an installed one is never reinstalled; a half-installed one (crash, pip
failure: no marker) is removed and redone from scratch. The live release is not touched.
With RUNTIME docker the folder holds the code only (the image holds the venv); such a release
deployed later with the python runtime gets its venv then."""
import os
import shutil
import stat
import time
from typing import Any, Callable, Dict, Optional

from . import app as apps
from . import delta, lease, release, transient, venv_build
from .base import build_user
from .errors import AgentError
from .fsutil import own_dir, read_regular
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]
NEARLY_FULL = 200 << 20   # bytes free below which a failure is put down to the volume
RUNNING = ("running", "degraded", "starting", "initializing", "maintenance")


def uploads() -> str:
    return release.bundle_home() + "/uploads"


def remove(path: str) -> None:
    """PATH gone, whatever it is (a link is removed, never followed)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def root_owned(top: str) -> None:
    """chown -R root:root, chmod -R u+rwX,go+rX,go-w, and no set-id bit (links are not followed)."""
    uid, gid = os.geteuid(), os.getegid()
    for d, dirs, files in os.walk(top):
        for p in [d] + [os.path.join(d, n) for n in dirs + files]:
            st = os.lstat(p)
            os.chown(p, uid, gid, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                continue
            m = stat.S_IMODE(st.st_mode) & 0o777
            x = 0o111 if stat.S_ISDIR(st.st_mode) or m & 0o111 else 0
            os.chmod(p, (m | 0o644 | x) & ~0o022)


def link(target: str, path: str) -> None:
    """PATH -> TARGET in one rename (ln -sfn, atomically)."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    remove(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, path)


class Install:
    def __init__(self, host: Host, app: apps.App, rid: str, runtime: str, log: Log, clock: Callable[[], float] = time.monotonic):
        self.host, self.app, self.rid, self.runtime, self.log, self.clock = host, app, rid, runtime, log, clock
        self.dest = "%s/releases/%s" % (app.root, rid)
        self.venv: Optional[str] = None   # a venv this install (re)builds: removed unless it got its marker
        self.started = clock()

    def free_bytes(self) -> "tuple[int, str]":
        """The free space of the fuller of the releases' and the venvs' volumes, and that folder."""
        free = []
        for d in ("%s/releases" % self.app.root, "%s/venvs" % self.app.root):
            try:
                st = os.statvfs(self.host.path(d))
            except OSError:
                continue
            free.append((st.f_bavail * st.f_frsize, d))
        return min(free) if free else (1 << 62, "")

    def full_message(self) -> str:
        avail, where = self.free_bytes()
        if avail >= NEARLY_FULL:
            return ""
        return ("installing release %s failed: the release volume is nearly full (%d MiB free in %s); free space there and deploy again."
                " The half-installed release was removed, the live release is unchanged" % (self.rid, avail >> 20, where))

    def shutting_down(self) -> bool:
        r = self.host.run(["systemctl", "is-system-running"])
        return (r.stdout or "").strip() not in RUNNING

    def run(self, action: str, src: str) -> Dict[str, Any]:
        try:
            if action == "copy":
                self.copy(src)
            if action == "copy" and self.runtime == "docker":   # the image holds the venv (docker-image.ts)
                venv = ""
            else:
                venv = self.build()
                link(venv, self.host.path(self.dest + "/.venv"))
                gunicorn = self.host.path(venv + "/bin/gunicorn")   # where .venv points
                if not (os.path.isfile(gunicorn) and os.access(gunicorn, os.X_OK)):
                    raise AgentError("gunicorn is not installed by requirements.txt of release %s (add gunicorn to it)" % self.rid)
            seconds = int(self.clock() - self.started)
            release.write_mark(self.host, self.app, self.rid, self.runtime, seconds)
        except AgentError:
            raise
        except Exception as e:
            raise AgentError(self.full_message() or "installing release %s failed: %s: %s; the half-installed release was removed,"
                             " the live release is unchanged" % (self.rid, type(e).__name__, e)) from e
        finally:
            self.cleanup()
        self.log("release %s installed%s in %ds" % (self.rid, " (runtime docker)" if not venv else "", seconds))
        return {"action": action, "venv": venv, "seconds": seconds}

    def cleanup(self) -> None:
        """Whatever stopped the install before the marker leaves nothing half-installed (it takes no
        space and is redone from scratch next time)."""
        if self.venv and read_regular(self.host.path(self.venv + "/" + venv_build.MARK)) is None:
            remove(self.host.path(self.venv))
        if read_regular(self.host.path(self.dest + "/" + release.MARKER)) is None:
            remove(self.host.path(self.dest))

    def copy(self, src: str) -> None:
        dest = self.host.path(self.dest)
        if delta.is_delta(src):   # only the changed files were uploaded: the rest from a kept release
            got = delta.assemble(self.host, self.app, self.rid, src, dest, self.log)
            self.log("release %s assembled from kept release %s: %d files uploaded, %d linked%s" % (
                self.rid, got["base"], got["sent"], got["linked"], ", %d from earlier uploads" % got["earlier"] if got["earlier"] else ""))
            root_owned(dest)
            return
        remove(dest)
        shutil.copytree(src, dest, symlinks=True)   # as cp -a: links as links, modes and times kept
        remove(os.path.join(dest, ".venv"))
        # the files must be exactly the release (its id is their hash, components/upload.ts): an upload cut
        # short or overwritten meanwhile (e.g. by another stack uploading the same release) is not installed
        got = release.tree_hash(dest)
        if got != self.rid:
            raise AgentError("the upload of release %s is incomplete or changed (its files hash to %s); run pulumi up again" % (self.rid, got))
        root_owned(dest)

    def as_builder(self, builder: str, writable: str, mode: str, venv: str, pipvenv: str, seed: str) -> "tuple[int, str]":
        """venv_build.py MODE as BUILDER, in a sandboxed transient unit that can write only WRITABLE."""
        props = ["User=" + builder, "Group=" + builder, "WorkingDirectory=" + self.dest, "UMask=0022",
                 "ProtectSystem=strict", "ReadWritePaths=" + writable, "ProtectHome=yes", "PrivateTmp=yes",
                 "PrivateDevices=yes", "NoNewPrivileges=yes", "RestrictSUIDSGID=yes", "Environment=HOME=/tmp",
                 "Environment=PIP_NO_CACHE_DIR=1", "Environment=PIP_DISABLE_PIP_VERSION_CHECK=1"]
        with open(venv_build.__file__, encoding="utf-8") as fh:
            source = fh.read()
        name = "fdeploy-%s-build-%d-%s" % (self.app.name, os.getpid(), mode)
        r = transient.run_unit(self.host, name, props, ["python3", "-I", "-B", "-", mode, venv, pipvenv, seed or "-"], input=source)
        return r.returncode, r.stdout or ""

    def builder_dir(self, path: str, uid: int, gid: int) -> None:
        local = self.host.path(path)
        if not os.path.isdir(local) or os.path.islink(local):
            remove(local)
            os.mkdir(local, 0o755)
        os.chown(local, uid, gid, follow_symlinks=False)
        os.chmod(local, 0o755, follow_symlinks=False)

    def build(self) -> str:
        """The release's venv (venvs/<key>), built unless it is already; its path."""
        builder = build_user(self.app.name)
        if self.host.passwd(builder) is None:
            raise AgentError("the build user %s is missing; deploy the base system again (pulumi up)" % builder)
        plan = release.venv_plan(self.host, self.app, self.rid, release.python_vv(self.host))
        venv, pipvenv = plan["venv"], plan["pipvenv"]
        if plan["built"]:
            self.log("release %s: the venv of these requirements is built already (%s); nothing to install" % (self.rid, os.path.basename(venv)))
            return venv
        uid, gid = self.host.user_ids(builder)
        own_dir(self.host.path(self.app.root + "/venvs"), 0o755)
        self.venv = venv
        # a build unit left running by a deploy killed outright (kill -9: no stop of its unit) would
        # go on writing into the venv rebuilt here; under the deploy lock no other build runs
        self.host.run(["systemctl", "stop", "fdeploy-%s-build-*" % self.app.name])
        remove(self.host.path(venv))   # half built by an interrupted run: no marker
        self.builder_dir(venv, uid, gid)
        self.log("creating venv %s and installing requirements for %s (as %s)" % (os.path.basename(venv), self.rid, builder))
        out = ""
        if not plan["pip_built"]:
            # one pip per app, read-only to every later build: a venv made without a pip of its own
            # takes 0.1 s instead of ~6 s (ensurepip)
            self.builder_dir(pipvenv, uid, gid)
            rc, text = self.as_builder(builder, pipvenv, "pip", venv, pipvenv, "")
            out = text + ("" if rc == 0 else " (building the app's pip in %s failed)\n" % pipvenv)
        if plan["seed"]:
            self.log("the requirements add to those of the live release: starting from a copy of its venv (%s)" % os.path.basename(plan["seed"]))
        rc, text = self.as_builder(builder, venv, "venv", venv, pipvenv, plan["seed"])
        interrupted = ("the venv build of release %s was interrupted before it finished (is the server shutting down?); run pulumi up again"
                       % self.rid)
        if rc != 0:
            for line in (out + text).rstrip().splitlines()[-20:]:
                self.log(line)
            if self.full_message():
                raise AgentError(self.full_message())
            if self.shutting_down():   # pip killed by a shutdown fails too: not an error of the requirements
                raise AgentError(interrupted)
            raise AgentError("pip install -r requirements.txt failed for release %s (see above); fix requirements.txt,"
                             " the live release is unchanged" % self.rid)
        # a build unit stopped from outside (a shutdown) can end "successfully" without finishing
        if read_regular(self.host.path(venv + "/" + venv_build.MARK)) is None:
            raise AgentError(interrupted)
        return venv


def release_install(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid, runtime = release.check_id(params.get("RELEASE_ID")), release.check_runtime(params.get("RUNTIME"))
    src = "%s/%s" % (uploads(), rid)

    def action() -> str:
        return release.plan(host, app, rid, runtime, bool(params.get("PINNED")), src)["action"]

    if action() == "installed":
        log("release %s already installed" % rid)
        return {"action": "installed", "venv": "", "seconds": 0}
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        # another deploy (another stack, or an interrupted run whose install finished) may have installed
        # it while this one waited: a release that may already be live is never removed
        todo = action()
        if todo == "installed":
            log("release %s already installed" % rid)
            return {"action": "installed", "venv": "", "seconds": 0}
        return Install(host, app, rid, runtime, log).run(todo, src)
