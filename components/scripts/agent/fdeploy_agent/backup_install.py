"""What the backup units run, installed by root where the app user cannot write (backup-deploy):
  /usr/local/lib/fdeploy/litestream-<version>/litestream   Litestream, from one file and its pinned
      sha256: uploaded with the scripts (UPLOAD), or the official release archive downloaded here (URL)
  /usr/local/lib/fdeploy/backup-agent -> agent-<hash>      a copy of this agent per content (the app
      user cannot read the bundle: ProtectHome=), swapped in one rename; older copies removed"""
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from typing import Any, Callable, Dict

from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host

Log = Callable[[str], None]
LIB = "/usr/local/lib/fdeploy"
AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # <bundle>/agent


def bundle_home() -> str:
    """~/.fdeploy/<app>/ of the SSH user: the uploads beside the scripts bundle."""
    return os.path.dirname(os.path.dirname(AGENT_DIR))


def litestream(host: Host, p: Dict[str, Any], log: Log) -> bool:
    """Litestream P["VERSION"] installed unless it is, from the file P["SHA256"] pins; True when installed now."""
    folder = host.path("%s/litestream-%s" % (LIB, p["VERSION"]))
    binary = os.path.join(folder, "litestream")
    if os.access(binary, os.X_OK) and read_regular(os.path.join(folder, "litestream.src")) == p["SHA256"].encode():
        return False
    source = p.get("UPLOAD") or p["URL"]
    if p.get("UPLOAD"):
        data = read_regular(os.path.join(bundle_home(), p["UPLOAD"], "litestream"))
        if data is None:
            raise AgentError("the uploaded Litestream %s is missing on the server; run pulumi up again (flask-deploy:backup.litestream)" % p["UPLOAD"])
    else:
        tmp = tempfile.mkdtemp(prefix="fdeploy-litestream-")
        try:
            r = host.run(["curl", "-fsSL", "--max-time", "120", "-o", os.path.join(tmp, "file"), p["URL"]])
            if r.returncode != 0:
                raise AgentError("could not download %s; set flask-deploy:backup.litestream to auto or upload (%s)" % (p["URL"], (r.stderr or "").strip()[:200]))
            data = read_regular(os.path.join(tmp, "file")) or b""
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if hashlib.sha256(data).hexdigest() != p["SHA256"]:
        raise AgentError("Litestream from %s does not match the pinned sha256 %s; refusing to install it (flask-deploy:backup.litestream)" % (source, p["SHA256"]))
    if not p.get("UPLOAD"):
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                member = tar.extractfile("litestream")
                data = member.read() if member else b""
        except (tarfile.TarError, KeyError):
            data = b""
        if not data:
            raise AgentError("the Litestream release archive has no litestream binary; set flask-deploy:backup.litestream to auto or upload")
    own_dir(host.path(LIB), 0o755)
    own_dir(folder, 0o755)
    write_atomic(binary, data, 0o755)
    write_atomic(os.path.join(folder, "litestream.src"), p["SHA256"].encode(), 0o644)
    log("litestream %s installed in %s" % (p["VERSION"], folder[len(host.root.rstrip("/")):]))
    return True


def content_hash(folder: str) -> str:
    """The agent's *.py and *.conf files (paths and contents): 16 hex digits."""
    lines = {}
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith((".py", ".conf")):
                path = os.path.join(top, f)
                with open(path, "rb") as fh:
                    rel = "./" + os.path.relpath(path, folder)
                    lines[rel] = "%s  %s\n" % (hashlib.sha256(fh.read()).hexdigest(), rel)
    return hashlib.sha256("".join(lines[k] for k in sorted(lines)).encode()).hexdigest()[:16]


def agent_copy(host: Host, source: str = AGENT_DIR) -> bool:
    """backup-agent names root's copy of SOURCE (0755/0644); True when it changed (the backup unit restarts)."""
    name = "agent-" + content_hash(source)
    lib, link = host.path(LIB), host.path(LIB + "/backup-agent")
    own_dir(lib, 0o755)
    folder = os.path.join(lib, name)
    if not os.path.isdir(folder):
        shutil.rmtree(folder + ".tmp", ignore_errors=True)
        shutil.copytree(source, folder + ".tmp", ignore=shutil.ignore_patterns("__pycache__"))
        for top, dirs, files in os.walk(folder + ".tmp"):
            for d in dirs:
                os.chmod(os.path.join(top, d), 0o755)
            for f in files:
                os.chmod(os.path.join(top, f), 0o644)
        os.chmod(folder + ".tmp", 0o755)
        os.rename(folder + ".tmp", folder)
    changed = not (os.path.islink(link) and os.readlink(link) == LIB + "/" + name)
    if changed:
        tmp = link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(LIB + "/" + name, tmp)
        os.replace(tmp, link)
    for old in os.listdir(lib):
        if old.startswith("agent-") and old != name:
            shutil.rmtree(os.path.join(lib, old), ignore_errors=True)
    return changed
