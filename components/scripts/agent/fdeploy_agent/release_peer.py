"""A rollback on a fleet to a release a host never ran (it joined later; README "Scale out"): the release's files
come from the first host, which keeps it (fdeploy rollback's plan found it there), to the host's uploads folder,
checked by hash, and the host's own release-install (PINNED) installs them as any upload: its venv built, or
found built, as for a new release. The live release is not touched until the fleet switch.
  release-export  (on the first host) params APP, RELEASE_ID: the kept release's files as the upload held them
                  {"files": [[path, mode, base64]], "links": [[path, target]]}: its .venv, its marker and the links
                  to shared/ (added after its install) left out
  release-import  (on the host) params APP, RELEASE_ID, CHECK (1: only say whether it is needed), FILES, LINKS:
                  {"action": "kept" (installed here), "uploaded" (its upload is here) or "missing"/"copied"}
  release-copy    (on the deploying machine: a local step of the stack) params APP, RELEASE_ID, FROM, TO ({address,
                  ssh, export | import}), RUNTIME: asks TO, and only when it lacks the release exports it on FROM into TO;
                  runtime docker refuses then (the image is not copied), before any host switches."""
import base64
import json
import os
import shutil
import stat
import tempfile
from typing import Any, Dict, List, Tuple

from . import app as apps
from . import install, release
from .errors import AgentError
from .host import Host


def _rel(path: Any) -> str:
    """A relative path inside a release (no absolute path, no '..', no empty part)."""
    if not isinstance(path, str) or not path or path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
        raise AgentError("bad path %r in a release's files" % (path,))
    return path


def release_files(host: Host, app: apps.App, rid: str) -> Tuple[List[List[Any]], List[List[str]]]:
    """The files and links of installed release RID, as its upload held them."""
    dest = host.path("%s/releases/%s" % (app.root, rid))
    if not os.path.isfile(os.path.join(dest, release.MARKER)):
        try:
            kept = sorted(os.listdir(host.path(app.root + "/releases")))
        except OSError:
            kept = []
        raise AgentError("release %s is not kept on this host either (kept: %s): roll back to a kept one (fdeploy releases)" % (rid, " ".join(kept)))
    shared = app.root + "/shared"
    files: List[List[Any]] = []
    links: List[List[str]] = []
    for d, dirs, names in os.walk(dest):
        for n in sorted(dirs + names):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, dest)
            if rel in (".venv", release.MARKER):
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
                if not (target == shared or target.startswith(shared + "/")):   # shared/ links come after the install
                    links.append([rel, target])
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    files.append([rel, stat.S_IMODE(st.st_mode), base64.b64encode(f.read()).decode()])
    return files, links


def release_export(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    files, links = release_files(host, app, release.check_id(params.get("RELEASE_ID")))
    return {"files": files, "links": links}


def write_upload(folder: str, files: Any, links: Any) -> None:
    """FILES and LINKS (release_files()) written into the new folder FOLDER."""
    os.mkdir(folder, 0o755)
    for rel, mode, data in files if isinstance(files, list) else []:
        p = os.path.join(folder, _rel(rel))
        os.makedirs(os.path.dirname(p), 0o755, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, int(mode) & 0o755 | 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(data))
    for rel, target in links if isinstance(links, list) else []:
        p = os.path.join(folder, _rel(rel))
        os.makedirs(os.path.dirname(p), 0o755, exist_ok=True)
        os.symlink(str(target), p)


def release_import(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = release.check_id(params.get("RELEASE_ID"))
    if release.installed(host, "%s/releases/%s" % (app.root, rid), "python"):
        return {"action": "kept"}
    dest = "%s/%s" % (install.uploads(), rid)
    if os.path.isdir(dest) and not os.path.islink(dest) and release.tree_hash(dest) == rid:
        return {"action": "uploaded"}
    if params.get("CHECK"):
        return {"action": "missing"}
    os.makedirs(install.uploads(), 0o755, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s-" % rid, dir=install.uploads())
    try:
        write_upload(tmp + "/r", params.get("FILES"), params.get("LINKS"))
        got = release.tree_hash(tmp + "/r")
        if got != rid:
            raise AgentError("the copy of releases/%s from the first host hashes to %s, not to its id: not installed; run the rollback again" % (rid, got))
        if os.path.lexists(dest):
            shutil.rmtree(dest) if os.path.isdir(dest) and not os.path.islink(dest) else os.unlink(dest)
        os.rename(tmp + "/r", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("release %s copied here from the first host (%d files): the install builds or finds its venv" % (rid, len(params.get("FILES") or [])))
    return {"action": "copied"}


def release_copy(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    from .fleet import known_hosts, ssh_json
    app, rid = apps.check_name(params.get("APP")), release.check_id(params.get("RELEASE_ID"))
    src, dst = params.get("FROM") or {}, params.get("TO") or {}
    with tempfile.TemporaryDirectory(prefix="fdeploy-peer-") as folder:
        known_hosts(folder, [src["ssh"], dst["ssh"]])

        def call(t: Dict[str, Any], line: str, body: Dict[str, Any], what: str) -> Dict[str, Any]:
            return ssh_json(host, folder, t["ssh"], t[line], json.dumps(dict(body, APP=app, RELEASE_ID=rid)), what, t["address"], log)
        need = call(dst, "import", {"CHECK": 1}, "release-import").get("action")
        if need != "missing":
            return {"action": need}
        if params.get("RUNTIME") == "docker":   # the files alone would not run: its image is the first host's engine's
            raise AgentError("release %s never ran on %s and runtime docker cannot copy its image there yet: pin a release every host ran "
                             "(fdeploy releases)\nnothing changed on any host" % (rid, dst["address"]))
        got = call(src, "export", {}, "release-export (the release's files)")
        call(dst, "import", {"FILES": got.get("files"), "LINKS": got.get("links")}, "release-import")
    log("release %s copied from %s to %s (it never ran there: the host joined later)" % (rid, src["address"], dst["address"]))
    return {"action": "copied", "files": len(got.get("files") or [])}
