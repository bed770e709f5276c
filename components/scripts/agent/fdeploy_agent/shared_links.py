"""Rendered shared files inside shared folders (`sharedFiles` with `content` under a `sharedDirs`
folder, e.g. instance/config.py): the link shared/<f> -> APP_ROOT/files/<f> lives in a folder the
app can write, so a hostile app can swap it for its own file — which the next release, a fix
included, would load. Which links must exist follows from root-owned files only: the release's
manifest (.fdeploy-shared, the paths shared-create linked into shared/) and the rendered files in
APP_ROOT/files. They are checked without following any link, put back as the app user (root never
writes in shared/) before a release loads (preflight) and before it goes live (the switch), and
reported to ServerState (`sharedFilesInForce`)."""
import os
from typing import Any, List, Optional

from . import app as apps
from .errors import AgentError
from .fsutil import read_regular
from .host import Host


def expected_links(host: Host, app: apps.App, release_id: str) -> List[str]:
    """The rendered files that must be linked from inside a shared folder, for RELEASE_ID."""
    release = "%s/releases/%s" % (app.root, release_id)
    manifest = read_regular(host.path(release + "/.fdeploy-shared"))
    if manifest is None:
        return []
    shared_dirs = []
    for entry in manifest.decode(errors="replace").splitlines():
        link = host.path("%s/%s" % (release, entry))
        if os.path.islink(link) and os.readlink(link) == "%s/shared/%s" % (app.root, entry):
            shared_dirs.append(entry)
    files_root = host.path(app.root + "/files")
    rendered = []
    for folder, dirs, names in os.walk(files_root):   # root-owned (shared-create): no link to follow
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        rendered += [os.path.relpath(os.path.join(folder, n), files_root) for n in names]
    return sorted(f for f in rendered if any(f.startswith(d + "/") for d in shared_dirs))


def link_target(host: Host, shared: str, rel: str) -> Optional[str]:
    """Where shared/REL points, read without following any link on the way (None: not a link, or
    a folder on the way is missing or is itself a link)."""
    fd = None
    try:
        fd = os.open(host.path(shared), os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
        parts = rel.split("/")
        for part in parts[:-1]:
            nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.readlink(parts[-1], dir_fd=fd)
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)


def wrong_links(host: Host, app: apps.App, release_id: str) -> List[str]:
    return [f for f in expected_links(host, app, release_id)
            if link_target(host, app.root + "/shared", f) != "%s/files/%s" % (app.root, f)]


def relink(host: Host, app: apps.App, release_id: str, log: Any) -> None:
    """Put back every link the app replaced, as the app user; refuse to go on if one stays wrong."""
    wrong = wrong_links(host, app, release_id)
    for f in wrong:
        log("shared/%s is not the link to the rendered file (the app replaced it); linking it again" % f)
        host.run(["runuser", "-u", app.user, "--", "ln", "-sfnT", "%s/files/%s" % (app.root, f), "%s/shared/%s" % (app.root, f)],
                 merge_output=True)
    still = wrong_links(host, app, release_id) if wrong else []
    if still:
        raise AgentError("%s: the link to the rendered shared file could not be put back; move it away and deploy again\n"
                         "(the app made it a folder, or made a folder on its way a link)" % ", ".join("%s/shared/%s" % (app.root, f) for f in still))
