"""What an activation that went live removes (switch.py, after its history entry): releases
outside the newest KEEP_RELEASES that went live and that no slot points at, their uploads, the
Docker images and shared venvs no kept release uses, and the SSH user's old uploads of script
bundles and migration sets. Anything made in the last minute (a release or venv being installed by
a deploy that waits for the lock) or, for uploads, the last hour is left."""
import os
import re
import shutil
import time
from typing import Any, Dict, List, Set

from . import app as apps
from . import history
from .app import App
from .errors import AgentError
from .host import Host
from .live import BUNDLE
from .release import PIP_VENV

RID = re.compile(r"[0-9a-f]{12}")


def _entries(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _older(path: str, seconds: int, now: float) -> bool:
    try:
        return os.lstat(path).st_mtime < now - seconds
    except OSError:
        return False


def kept_releases(host: Host, app: App, keep: int) -> Set[str]:
    """The releases a slot points at, and the newest KEEP that went live."""
    slots = host.path(app.slots)
    kept = {os.path.basename(os.path.realpath(os.path.join(slots, s))) for s in _entries(slots)
            if os.path.islink(os.path.join(slots, s))}
    return kept | set(history.live_ids(history.entries(host, app))[:keep])


def prune(host: Host, params: Dict[str, Any], log: Any, lock_wait: int, bundle: str = BUNDLE) -> Dict[str, Any]:
    """`prune`, params (the activation's) APP, KEEP_RELEASES. Runs inside the switch's lock, after went-live."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    keep = str(params.get("KEEP_RELEASES", ""))
    if not re.fullmatch(r"[0-9]{1,2}", keep):
        raise AgentError("the number of releases to keep is %r: flask-deploy:keepReleases must be a whole number from 2 to 50" % keep)
    home, now = os.path.dirname(bundle), time.time()
    kept = kept_releases(host, app, int(keep))
    releases = host.path(app.root + "/releases")
    pruned: List[str] = []
    for rid in _entries(releases):
        d = os.path.join(releases, rid)
        if rid in kept or not os.path.isdir(d) or os.path.islink(d) or not _older(d, 60, now):
            continue
        shutil.rmtree(d)
        if RID.fullmatch(rid):
            shutil.rmtree(os.path.join(home, "uploads", rid), ignore_errors=True)
        pruned.append(rid)
        log("pruned release %s" % rid)
    images = _prune_images(host, app, releases, log)
    venvs = _prune_venvs(host, app, releases, now, log)
    uploads = _prune_uploads(host, app, home, bundle, now, log)
    return {"releases": pruned, "images": images, "venvs": venvs, "uploads": uploads}


def _prune_images(host: Host, app: App, releases: str, log: Any) -> List[str]:
    """runtime docker: the images of releases no longer kept (a kept release keeps its image for rollbacks)."""
    if not host.which("docker"):
        return []
    out = host.run(["docker", "image", "ls", "--format", "{{.Tag}}", "fdeploy-" + app.name])
    pruned = []
    for tag in out.stdout.split() if out.returncode == 0 else []:
        if RID.fullmatch(tag) and not os.path.isdir(os.path.join(releases, tag)):
            if host.run(["docker", "image", "rm", "fdeploy-%s:%s" % (app.name, tag)]).returncode == 0:
                pruned.append(tag)
                log("pruned image fdeploy-%s:%s" % (app.name, tag))
    return pruned


def _prune_venvs(host: Host, app: App, releases: str, now: float, log: Any) -> List[str]:
    """The shared venvs (release.sh) no kept release links to (its .venv), unless made this minute; never
    the app's pip (PIP_VENV), which no release links to."""
    used = set()
    for rid in _entries(releases):
        try:
            used.add(os.path.normpath(os.readlink(os.path.join(releases, rid, ".venv"))))
        except OSError:
            pass
    venvs, pruned = host.path(app.root + "/venvs"), []
    for name in _entries(venvs):
        v = os.path.join(venvs, name)
        if (name != PIP_VENV and os.path.isdir(v) and not os.path.islink(v) and os.path.normpath("%s/venvs/%s" % (app.root, name)) not in used
                and _older(v, 60, now)):
            shutil.rmtree(v)
            pruned.append(name)
            log("pruned venv %s" % name)
    return pruned


def _prune_uploads(host: Host, app: App, home: str, bundle: str, now: float, log: Any) -> List[str]:
    """Older script bundles and migration sets in the SSH user's home, unused for an hour; never this
    bundle (went-live points live-scripts at it) or the migration set in force."""
    current = os.path.basename(os.path.realpath(host.path(app.root + "/migrations/current")))
    keep = {os.path.basename(bundle), "migrations-" + current}
    pruned = []
    for name in _entries(home):
        d = os.path.join(home, name)
        if (re.match(r"(scripts|migrations)-", name) and name not in keep and os.path.isdir(d)
                and not os.path.islink(d) and _older(d, 3600, now)):
            shutil.rmtree(d, ignore_errors=True)
            pruned.append(name)
            log("pruned upload %s" % name)
    return pruned
