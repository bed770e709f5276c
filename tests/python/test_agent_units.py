"""The slot units (python and docker runtime) run in the app's one sandbox, hardening.conf, and
score at most 2.5 in `systemd-analyze security` (issue 25; rated offline here when this machine's
systemd-analyze can, on a real server by the e2e suites)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import units  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402

APP = App("shop", "/srv/shop", "shop")


def rendered():
    args = units.docker_app_args(APP, 1001, 1001, ["SECRET_KEY"], ["uploads"], "%i")
    return {"python": units.python_unit(APP, 2, 60, "wsgi:app"),
            "docker": units.docker_unit(APP, 2, 60, "wsgi:app", args, "512m", "1.5", ["uploads"])}


@pytest.mark.parametrize("runtime", ["python", "docker"])
def test_every_line_of_the_sandbox_is_in_the_unit(runtime):
    service = rendered()[runtime].split("[Service]\n", 1)[1].split("\n[Install]", 1)[0].splitlines()
    for line in units.hardening(APP.root).splitlines():
        assert line in service, line


def test_docker_only_the_folder_steps_run_unconfined_and_the_client_has_no_network():
    unit = rendered()["docker"]
    pre = re.findall(r"^ExecStartPre=(.*)$", unit, re.M)
    assert pre and all(p.startswith("+") for p in pre)
    assert re.search(r"^ExecStart=/usr/bin/docker run ", unit, re.M)
    assert re.search(r"^ExecStop=/bin/sh ", unit, re.M)
    assert "\nPrivateNetwork=yes\n" in unit and "\nUser=" not in unit


def offline_rating():
    exe = shutil.which("systemd-analyze")
    if not exe or "--offline" not in subprocess.run([exe, "--help"], capture_output=True, text=True).stdout:
        pytest.skip("no systemd-analyze with --offline here (the e2e suites rate the units on a server)")
    return exe


@pytest.mark.parametrize("runtime", ["python", "docker"])
def test_the_exposure_is_at_most_2_5(runtime, tmp_path):
    exe = offline_rating()
    path = tmp_path / "fdeploy-shop@.service"
    path.write_text(rendered()[runtime])
    out = subprocess.run([exe, "security", "--offline=yes", "--no-pager", str(path)], capture_output=True, text=True).stdout
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out
    assert float(m[1]) <= 2.5, out
