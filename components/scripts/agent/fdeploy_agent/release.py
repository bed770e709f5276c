"""Releases on this server: /srv/<app>/releases/<id>, where the id is the hash of the release's
files (components/upload.ts hashFiles: sha256 over each relative path, NUL, content, NUL, in path
order; the first 12 hex characters)."""
import hashlib
import os
import re
from typing import Any, Dict

from . import app as apps
from .errors import AgentError
from .host import Host


def tree_hash(folder: str) -> str:
    files = sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names)
    h = hashlib.sha256()
    for f in files:
        with open(os.path.join(folder, f), "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()[:12]


def release_hash(host: Host, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """params APP, RELEASE_ID: the hash of releases/<id> as copied (release.sh checks it is the id)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid = str(params.get("RELEASE_ID", ""))
    if not re.fullmatch(r"[0-9a-f]{12}", rid):
        raise AgentError("bad release id %r" % rid)
    return {"hash": tree_hash(host.path("%s/releases/%s" % (app.root, rid)))}
