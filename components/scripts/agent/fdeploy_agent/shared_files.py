"""Shared paths (Capistrano's linked_dirs/linked_files): the SharedPaths step:
  DIRS   release/<d> -> APP_ROOT/shared/<d>        (the app user makes the folder)
  FILES  plain: release/<f> -> APP_ROOT/shared/<f> (the app user makes and owns the file)
         rendered (content): APP_ROOT/files/<f>, root:<app> 0640, linked from the release or,
         inside a shared dir, from shared/<f> (a link the app user makes)
Root writes only into root-owned folders (the release, APP_ROOT/files); what is to be done inside
shared/ runs as the app user (runuser, umask 0007: mkdir, touch, ln), so root follows no path the
app can write. The release's links are listed in its manifest .fdeploy-shared (shared_links.py
reads it); a link this step made earlier and no longer configured goes.
  shared-create  params APP, RELEASE_ID, DIRS (JSON list), FILES (JSON list of {path, content|null};
                 secret), under the deploy lock: {"changed": a rendered file changed, "revision":
                 "<ns>" or "" (the activation restarts the app when it is set), "summary"}
"""
import json
import os
import re
import secrets
import time
from typing import Any, Dict, List, Optional, Tuple

from . import app as apps
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from . import lease
from .host import Host
from .lock import deploy_lock
from .release import MARKER, check_id

PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
Files = List[Tuple[str, Optional[str]]]


def parse(dirs_json: Any, files_json: Any) -> Tuple[List[str], Files]:
    """DIRS and FILES as given (JSON text or lists), every path checked (also checked in config.ts)."""
    try:
        dirs = json.loads(dirs_json) if isinstance(dirs_json, str) else (dirs_json or [])
        files = json.loads(files_json) if isinstance(files_json, str) else (files_json or [])
        pairs = [(f["path"], f.get("content")) for f in files]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise AgentError("bad shared paths: DIRS must be a JSON list of paths, FILES a JSON list of {path, content}")
    if not isinstance(dirs, list):
        raise AgentError("bad shared paths: DIRS must be a JSON list of paths")
    for p in dirs + [p for p, _ in pairs]:
        if not isinstance(p, str) or not PATH.fullmatch(p):
            raise AgentError("bad shared path %r (flask-deploy:sharedDirs/sharedFiles: relative, no '..' or dot-components)" % (p,))
    for p, content in pairs:
        if content is not None and not isinstance(content, str):
            raise AgentError("bad shared file %r: its content must be text or null" % p)
    return dirs, pairs


def render(host: Host, app: apps.App, files: Files) -> bool:
    """APP_ROOT/files holds exactly the rendered FILES (root:<app group>, 0640 in 0750 folders); True
    when a file was written or removed (the activation then restarts the app)."""
    root = host.path(app.root + "/files")
    gid = host.user_ids(app.user)[1]
    own_dir(root, 0o750)
    os.chown(root, -1, gid)
    changed, keep = False, set()
    for p, content in files:
        if content is None:
            continue
        keep.add(p)
        d = root
        for part in p.split("/")[:-1]:   # root-owned folders only (root is the only writer here)
            d = os.path.join(d, part)
            if not os.path.isdir(d) or os.path.islink(d):
                if os.path.lexists(d):
                    os.unlink(d)
                os.mkdir(d, 0o750)
            os.chown(d, 0, gid)
            os.chmod(d, 0o750)
        dest = os.path.join(root, p)
        if os.path.isdir(dest) and not os.path.islink(dest):
            raise AgentError("%s/files/%s is a folder; a rendered shared file cannot be both (remove one of the two settings)" % (app.root, p))
        data = content.encode()
        if read_regular(dest) != data:
            changed = True
        write_atomic(dest, data, 0o640)
        os.chown(dest, 0, gid, follow_symlinks=False)
    for d, _, names in os.walk(root):   # files no longer configured
        for n in names:
            if os.path.relpath(os.path.join(d, n), root) not in keep:
                os.unlink(os.path.join(d, n))
                changed = True
    return changed


def check_link(host: Host, release: str, rel: str) -> None:
    """release/REL may become a link: refuses to replace a shipped file or folder, and a folder on
    the way that is not the release's own (a link into shared/)."""
    link = host.path("%s/%s" % (release, rel))
    if os.path.lexists(link) and not os.path.islink(link):
        raise AgentError("the release ships '%s'; a shared path cannot replace it (remove it from appDir)" % rel)
    real = os.path.realpath(host.path(release))
    parent = os.path.realpath(os.path.dirname(link))
    if parent != real and not parent.startswith(real + os.sep):
        raise AgentError("sharedDirs/sharedFiles: '%s' is not inside the release (a folder on its way is a link)" % rel)


def release_link(host: Host, release: str, rel: str, target: str) -> None:
    """release/REL -> TARGET, replaced in one rename when it points elsewhere."""
    check_link(host, release, rel)
    link = host.path("%s/%s" % (release, rel))
    os.makedirs(os.path.dirname(link), 0o755, exist_ok=True)
    if os.path.islink(link) and os.readlink(link) == target:
        return
    tmp = "%s.tmp-%s" % (link, secrets.token_hex(4))
    os.symlink(target, tmp)
    os.rename(tmp, link)


def inside(p: str, dirs: List[str]) -> bool:
    return any(p.startswith(d + "/") for d in dirs)


def steps(dirs: List[str], files: Files) -> List[str]:
    """What the app user does in shared/, in order: "mkdir <d>", "touch <plain file>", "link <f>"
    (shared/<f> -> APP_ROOT/files/<f>, a rendered file inside a shared dir)."""
    out = ["mkdir " + d for d in dirs]
    for p, content in files:
        if inside(p, dirs):   # a plain file inside a shared dir is the app's own
            if content is not None:
                out.append("link " + p)
        elif content is None:
            out.append("touch " + p)
    return out


def link(host: Host, app: apps.App, rid: str, dirs: List[str], files: Files) -> None:
    """The release's links (each shared dir, each file outside one) and its manifest."""
    release = "%s/releases/%s" % (app.root, rid)
    linked = []
    for d in dirs:
        release_link(host, release, d, "%s/shared/%s" % (app.root, d))
        linked.append(d)
    for p, content in files:
        if not inside(p, dirs):
            release_link(host, release, p, "%s/%s/%s" % (app.root, "files" if content is not None else "shared", p))
            linked.append(p)
    manifest = host.path(release + "/.fdeploy-shared")
    for old in (read_regular(manifest) or b"").decode(errors="replace").splitlines():
        gone = host.path("%s/%s" % (release, old))
        if old not in linked and PATH.fullmatch(old) and os.path.islink(gone):
            os.unlink(gone)
    write_atomic(manifest, "".join(p + "\n" for p in linked).encode(), 0o644)


def app_argv(app: apps.App, step: str) -> List[List[str]]:
    """The app user's commands for STEP ("<kind> <path>"); the path is checked (PATH: no space, no '..')."""
    kind, _, p = step.partition(" ")
    if not PATH.fullmatch(p):
        raise AgentError("bad shared path %r (flask-deploy:sharedDirs/sharedFiles)" % p)
    shared = "%s/shared/%s" % (app.root, p)
    parent = ["mkdir", "-p", "-m", "0770", os.path.dirname(shared)]
    if kind == "mkdir":
        return [["mkdir", "-p", "-m", "0770", shared]]
    if kind == "touch":
        return [parent, ["touch", shared]]
    if kind == "link":
        return [parent, ["ln", "-sfn", "%s/files/%s" % (app.root, p), shared]]
    raise AgentError("unknown shared step %r" % kind)


def as_app(host: Host, app: apps.App, argv: List[str], what: str = "") -> None:
    """ARGV as the app user (runuser: root's descriptors, the deploy lock among them, are not passed
    on), with umask 0007 as every file the app's group shares. WHAT: the step, as its error says it
    ("link shared/<path>")."""
    old = os.umask(0o007)
    try:
        r = host.run(["runuser", "-u", app.user, "--"] + argv, merge_output=True)
    finally:
        os.umask(old)
    if r.returncode != 0:
        raise AgentError("could not %s as %s (flask-deploy:sharedDirs/sharedFiles): %s" % (
            what or "%s in %s/shared/" % (argv[0], app.root), app.user, (r.stdout or "").strip()[-300:]))


def shared_create(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """SharedPaths' step: root's part (the rendered files, the release's links and manifest), then
    the app user's steps inside shared/."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = check_id(params.get("RELEASE_ID"))
    dirs, files = parse(params.get("DIRS", "[]"), params.get("FILES", "[]"))
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        result = shared_files(host, app, rid, dirs, files)
        for step in steps(dirs, files):
            kind, _, p = step.partition(" ")
            for argv in app_argv(app, step):
                as_app(host, app, argv, "%s shared/%s" % ("create" if kind == "mkdir" else kind, p))
    summary = "%d dirs, %d files" % (len(dirs), len(files))
    log("shared paths of %s: %s; %s" % (rid, summary, "shared files changed" if result["changed"] else "shared files unchanged"))
    return dict(result, summary=summary)


def shared_files(host: Host, app: apps.App, rid: str, dirs: List[str], files: Files) -> Dict[str, Any]:
    """Root's part: the rendered files, the release's links and manifest."""
    release = "%s/releases/%s" % (app.root, rid)
    if read_regular(host.path(release + "/" + MARKER)) is None or os.path.islink(host.path(release)):
        raise AgentError("release %s is not installed on this server (pulumi up installs it)" % rid)
    for p in dirs + [p for p, _ in files if not inside(p, dirs)]:   # refused before anything changes
        check_link(host, release, p)
    changed = render(host, app, files)
    link(host, app, rid, dirs, files)
    return {"changed": changed, "revision": str(time.time_ns()) if changed else ""}
