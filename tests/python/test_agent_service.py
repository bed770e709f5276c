"""service-delete (service.sh delete, what `pulumi destroy` runs): every slot of this app stopped
and its units, drop-ins, links and runtime folder gone — and nothing of another app whose name
shares the prefix."""
import io
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

LISTED = ("fdeploy-shop@blue.service loaded active running Gunicorn\n"
          "fdeploy-shop@green.socket loaded inactive dead socket\n")


def test_delete_stops_every_slot_and_removes_only_this_app_s_files(tmp_path):
    root = app_root(tmp_path, "etc/systemd/system/multi-user.target.wants", "etc/systemd/system/sockets.target.wants",
                    "etc/tmpfiles.d", "run/fdeploy-shop", "run/fdeploy-shop-2")
    system = root / "etc/systemd/system"
    for app in ("shop", "shop-2"):
        (system / ("fdeploy-%s@.service" % app)).write_text("[Service]\n")
        (system / ("fdeploy-%s@.socket" % app)).write_text("[Socket]\n")
        (system / ("fdeploy-%s@blue.service.d" % app)).mkdir()
        (system / ("fdeploy-%s@blue.service.d/50-slot-user.conf" % app)).write_text("[Service]\n")
        (system / "multi-user.target.wants" / ("fdeploy-%s@blue.service" % app)).symlink_to("/etc/systemd/system/fdeploy-%s@.service" % app)
        (root / "etc/tmpfiles.d" / ("fdeploy-%s.conf" % app)).write_text("d\n")
    calls = []

    def run(argv, merge_output=False):
        calls.append(list(argv))
        out = LISTED if argv[:2] == ["systemctl", "list-units"] else "c1\nc2\n" if argv[:2] == ["docker", "ps"] else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    host = Host(root=str(root), run=run, which=lambda c: "/usr/bin/docker", unmount=lambda t: False)
    out = io.StringIO()
    assert cli.main(["service-delete"], stdin=io.StringIO('{"APP": "shop"}'), stdout=out, stderr=io.StringIO(), host=host) == 0
    assert json.loads(out.getvalue())["stopped"] == ["fdeploy-shop@blue.service", "fdeploy-shop@green.socket"]
    assert ["systemctl", "disable", "--now", "--quiet", "fdeploy-shop@blue.service"] in calls
    assert ["docker", "ps", "-aq", "--filter", "name=^fdeploy-shop-"] in calls and ["docker", "rm", "-f", "c1", "c2"] in calls
    assert calls[-1] == ["systemctl", "daemon-reload"]
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if "shop" in str(p.relative_to(root)))
    assert left == ["etc/fdeploy/shop.conf", "etc/systemd/system/fdeploy-shop-2@.service", "etc/systemd/system/fdeploy-shop-2@.socket",
                    "etc/systemd/system/fdeploy-shop-2@blue.service.d", "etc/systemd/system/fdeploy-shop-2@blue.service.d/50-slot-user.conf",
                    "etc/systemd/system/multi-user.target.wants/fdeploy-shop-2@blue.service", "etc/tmpfiles.d/fdeploy-shop-2.conf",
                    "run/fdeploy-shop-2"]


def test_a_bad_app_name_is_refused(tmp_path):
    out = io.StringIO()
    assert cli.main(["service-delete"], stdin=io.StringIO('{"APP": "../x"}'), stdout=out, stderr=io.StringIO(),
                    host=Host(root=str(tmp_path), run=lambda a, merge_output=False: None)) == 1
    assert "bad app name" in json.loads(out.getvalue())["error"]
