"""Delta uploads (components/delta.ts): a new release is uploaded as only the files a base release
on this server cannot supply, and assembled here from that base.
  release-base  params APP, RELEASE_ID, MANIFEST ({path: sha256 hex of the content} of every file
                of the new release): {"base": a kept release that verifies ("" = none: upload
                everything), "need": the paths to upload, "installed": the release is here already}
A base is used only when every one of its files still hashes to its id (a release's id is the hash
of its files), and only files that are root's regular files in root's folders, not writable by
anyone else: the app can read a release, never plant a link or a file in one.
The upload of a delta holds DELTA_FILE ({"base", "manifest"}) and the needed files; assemble()
builds the release in a temporary folder beside releases/<id> (links to the base's files, copies
of the uploaded ones), checks the whole tree against the id, and only then renames it in place."""
import hashlib
import json
import os
import re
import shutil
import stat
from typing import Any, Callable, Dict, List, Optional

from . import app as apps
from . import release
from .errors import AgentError
from .fsutil import read_regular
from .host import Host

Log = Callable[[str], None]
DELTA_FILE = ".fdeploy-delta.json"
SKIP = (release.MARKER, ".venv")   # what an install adds to the top of a release
MAX_BASES = 3                      # kept releases verified at most per deploy (each is read whole)


def check_manifest(value: Any) -> Dict[str, str]:
    if isinstance(value, str):   # release-base's MANIFEST is JSON text (the parameters' keys are sorted at every level)
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or not value:
        raise AgentError("MANIFEST must be an object {path: sha256}")
    for p, h in value.items():
        parts = p.split("/") if isinstance(p, str) else []
        if not parts or any(x in ("", ".", "..") for x in parts) or "\0" in p or p in SKIP or p == DELTA_FILE:
            raise AgentError("MANIFEST must be {relative path: sha256} (not %r)" % (p,))
        if not isinstance(h, str) or not re.fullmatch(r"[0-9a-f]{64}", h):
            raise AgentError("MANIFEST must be {relative path: sha256 in hex} (not %r for %r)" % (h, p))
    return value


def _safe(st: os.stat_result, uid: int) -> bool:
    return st.st_uid == uid and not st.st_mode & 0o022


def scan(folder: str) -> Optional[Dict[str, str]]:
    """{path: sha256} of FOLDER (a kept release) when it verifies: a root-owned real folder of
    root-owned regular files and folders nobody else can write, whose tree hash is its name;
    otherwise None. Links are never followed (nor allowed, but for the install's .venv)."""
    uid = os.geteuid()
    try:
        top = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode) or not _safe(top, uid):
        return None
    files: Dict[str, str] = {}
    tree = hashlib.sha256()
    entries: List[str] = []
    for d, dirs, names in os.walk(folder):
        for n in dirs + names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, folder)
            st = os.lstat(p)
            if rel in SKIP:
                continue
            if not _safe(st, uid) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                return None
            if stat.S_ISREG(st.st_mode):
                entries.append(rel)
    for rel in sorted(entries):
        fd = os.open(os.path.join(folder, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        h = hashlib.sha256()
        with os.fdopen(fd, "rb") as fh:
            tree.update(rel.encode() + b"\0")
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                tree.update(chunk)
            tree.update(b"\0")
        files[rel] = h.hexdigest()
    if tree.hexdigest()[:12] != os.path.basename(folder):
        return None
    return files


def candidates(host: Host, app: apps.App, rid: str) -> List[str]:
    """Kept, installed releases other than RID: the live one first, then the newest installed."""
    releases = host.path(app.root + "/releases")
    live = release.server_link(host, app.root + "/current")
    live_id = os.path.basename(live) if live else ""
    kept = []
    try:
        names = os.listdir(releases)
    except OSError:
        names = []
    for n in names:
        if re.fullmatch(r"[0-9a-f]{12}", n) and n != rid:
            mark = read_regular("%s/%s/%s" % (releases, n, release.MARKER))
            if mark is not None:
                try:
                    at = str(json.loads(mark).get("installed_at", ""))
                except (ValueError, AttributeError):
                    at = ""
                kept.append((n == live_id, at, n))
    return [n for _, _, n in sorted(kept, reverse=True)]


def find_base(host: Host, app: apps.App, rid: str, manifest: Dict[str, str], log: Log) -> Dict[str, Any]:
    for n in candidates(host, app, rid)[:MAX_BASES]:
        files = scan(host.path("%s/releases/%s" % (app.root, n)))
        if files is None:
            log("kept release %s no longer matches its content hash (or is not root's alone): never used as a base" % n)
            continue
        have = set(files.values())
        need = sorted(p for p, h in manifest.items() if h not in have)
        if len(need) == len(manifest):
            continue
        return {"base": n, "need": need}
    return {"base": "", "need": sorted(manifest)}


def release_base(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = release.check_id(params.get("RELEASE_ID"))
    manifest = check_manifest(params.get("MANIFEST"))
    if read_regular(host.path("%s/releases/%s/%s" % (app.root, rid, release.MARKER))) is not None:
        log("release %s is installed already: nothing to upload" % rid)
        return {"base": "", "need": [], "installed": True}
    found = find_base(host, app, rid, manifest, log)
    if found["base"]:
        log("release %s: uploading %d of %d files; the rest from kept release %s" % (rid, len(found["need"]), len(manifest), found["base"]))
    else:
        log("release %s: no kept release to build on; uploading all %d files" % (rid, len(manifest)))
    return dict(found, installed=False)


def is_delta(upload: str) -> bool:
    return os.path.lexists(os.path.join(upload, DELTA_FILE))


def assemble(host: Host, app: apps.App, rid: str, upload: str, dest: str) -> Dict[str, Any]:
    """releases/<rid> (DEST, a local path) from the delta in UPLOAD and its base: built in a
    temporary folder, checked against RID, renamed in place. Raises AgentError (nothing left
    behind) when a file is neither uploaded nor in the base (gone, or no longer verifies)."""
    raw = read_regular(os.path.join(upload, DELTA_FILE))
    try:
        delta = json.loads(raw or b"")
        base = release.check_id(delta.get("base"))
        manifest = check_manifest(delta.get("manifest"))
    except (ValueError, AttributeError) as e:
        raise AgentError("the delta upload of release %s is unreadable (%s); run pulumi up again" % (rid, e)) from e
    base_dir = host.path("%s/releases/%s" % (app.root, base))
    files = scan(base_dir) or {}   # gone or changed: only a whole upload (over this one) can still assemble
    by_hash = {h: p for p, h in sorted(files.items())}
    tmp = "%s.assemble-%d" % (dest, os.getpid())
    remove(tmp)
    os.mkdir(tmp, 0o755)
    try:
        linked = 0
        for p in sorted(manifest):
            target = os.path.join(tmp, p)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            sent = os.path.join(upload, p)
            if os.path.isfile(sent) and not os.path.islink(sent):
                shutil.copy2(sent, target, follow_symlinks=False)
            elif manifest[p] in by_hash:
                os.link(os.path.join(base_dir, by_hash[manifest[p]]), target, follow_symlinks=False)
                linked += 1
            else:
                raise AgentError("delta base %s of release %s is gone or no longer matches its content hash: run `pulumi up --replace URN`"
                                 " (the release's -base step)\n%s is neither uploaded nor in the base; `pulumi stack --show-urns` lists the URNs"
                                 % (base, rid, p))
        got = release.tree_hash(tmp)
        if got != rid:
            raise AgentError("release %s assembled from kept release %s and the upload hashes to %s; nothing installed, run pulumi up again"
                             % (rid, base, got))
        remove(dest)
        os.rename(tmp, dest)
    finally:
        remove(tmp)
    return {"base": base, "linked": linked, "sent": len(manifest) - linked}


def remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
