"""runtime docker: the image a switch runs on this host (activate, before anything changes).

Each host's engine builds the release's image itself (components/docker-image.ts): the tag is
fdeploy-<app>:<release id>, the id (IMAGE_ID, sha256:…) is what the Docker provider recorded for this
host's build. The ids of two hosts' builds differ (the classic builder stamps each layer's creation
time, pip compiles .pyc files at build time), so hosts are not compared by id: each host's image is
built from the one build context the release id hashes, and here each host's tag must still name the
image its own build made. A rollback (and a fleet host going back) runs a kept image: only its tag is
needed."""
import re
from typing import Any, Dict

from .errors import AgentError
from .host import Host

IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")


def image_name(app: str, rid: str) -> str:
    return "fdeploy-%s:%s" % (app, rid)


def checked(host: Host, app: str, rid: str, params: Dict[str, Any]) -> str:
    """The id of RID's image on this host's engine. Refused: no such image; on a deploy (not ROLLBACK),
    a tag that no longer names the image this deploy built (IMAGE_ID)."""
    image = image_name(app, rid)
    r = host.run(["docker", "image", "inspect", "--format", "{{.Id}}", image])
    if r.returncode != 0:
        raise AgentError("image %s is not on this server's Docker engine: flask-deploy:release can pin only a release whose image is kept" % image)
    found = (r.stdout or "").strip()
    built = str(params.get("IMAGE_ID") or "")
    if not params.get("ROLLBACK") and IMAGE_ID.fullmatch(built) and found != built:
        raise AgentError("image %s is not what this deploy built here (its tag was moved); nothing changed: pulumi up --replace its image\n"
                         "the tag names %s, the build made %s (pulumi stack --show-urns: the URN ending in -image, -image-h2 …)" % (
                             image, found[:19], built[:19]))
    return found
