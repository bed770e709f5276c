"""Rendered shared files inside a shared folder: the app can swap their link in shared/ for its own
file; the agent finds that without following links (root-owned manifest and files/ say what must
be there) and links them again as the app user, before a release loads or goes live."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import shared_links  # noqa: E402
from fdeploy_agent.app import App  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

RID = "0123456789ab"
APP = App(name="shop", root="/srv/shop", user="shop")


@pytest.fixture
def root(tmp_path):
    rel = tmp_path / "srv/shop/releases" / RID
    for d in ("etc/fdeploy", "srv/shop/files/instance", "srv/shop/shared/instance"):
        (tmp_path / d).mkdir(parents=True)
    rel.mkdir(parents=True)
    (tmp_path / "etc/fdeploy/shop.conf").write_text("APP_ROOT=/srv/shop\nAPP_USER=shop\n")
    (rel / ".fdeploy-release.json").write_text("{}")
    (rel / ".fdeploy-shared").write_text("instance\nsettings.toml\n")
    (rel / "instance").symlink_to("/srv/shop/shared/instance")          # a shared folder
    (rel / "settings.toml").symlink_to("/srv/shop/files/settings.toml")  # a rendered file in the release
    (tmp_path / "srv/shop/files/instance/config.py").write_text("SECRET_KEY = 'x'\n")
    (tmp_path / "srv/shop/files/settings.toml").write_text("a = 1\n")
    (tmp_path / "srv/shop/shared/instance/config.py").symlink_to("/srv/shop/files/instance/config.py")
    return tmp_path


def relinking_host(root, ran):
    """runuser … ln -sfnT TARGET LINK, done in the temporary root."""
    def run(argv, merge_output=False):
        ran.append(argv)
        assert argv[:4] == ["runuser", "-u", "shop", "--"] and argv[4:6] == ["ln", "-sfnT"]
        link = root / argv[7].lstrip("/")
        if link.is_dir() and not link.is_symlink():
            return subprocess.CompletedProcess(argv, 1, "ln: cannot overwrite directory", "")
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(argv[6])
        return subprocess.CompletedProcess(argv, 0, "", "")
    return Host(root=str(root), run=run)


def test_only_rendered_files_inside_shared_folders_are_expected(root):
    assert shared_links.expected_links(Host(root=str(root)), APP, RID) == ["instance/config.py"]
    assert shared_links.wrong_links(Host(root=str(root)), APP, RID) == []


@pytest.mark.parametrize("swap", ["own file", "other link", "missing", "folder on the way is a link"])
def test_a_swapped_link_is_found_and_linked_again_as_the_app(root, swap, tmp_path):
    link = root / "srv/shop/shared/instance/config.py"
    link.unlink()
    if swap == "own file":
        link.write_text("import os; os.system('evil')\n")
    elif swap == "other link":
        link.symlink_to("/etc/shadow")
    elif swap == "folder on the way is a link":
        (root / "srv/shop/shared/instance").rmdir()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "config.py").symlink_to("/srv/shop/files/instance/config.py")   # right target, wrong place
        (root / "srv/shop/shared/instance").symlink_to(elsewhere)
    host = Host(root=str(root))
    assert shared_links.wrong_links(host, APP, RID) == ["instance/config.py"]
    if swap == "folder on the way is a link":
        return   # the app user's ln would follow its own link: the check stays wrong and the step fails (below)
    ran: list = []
    shared_links.relink(relinking_host(root, ran), APP, RID, lambda line: None)
    assert ran == [["runuser", "-u", "shop", "--", "ln", "-sfnT", "/srv/shop/files/instance/config.py", "/srv/shop/shared/instance/config.py"]]
    assert os.readlink(link) == "/srv/shop/files/instance/config.py"


def test_a_link_that_cannot_be_put_back_fails_naming_it(root):
    link = root / "srv/shop/shared/instance/config.py"
    link.unlink()
    link.mkdir()
    (link / "keep").write_text("x")
    with pytest.raises(AgentError, match="/srv/shop/shared/instance/config.py: the link to the rendered shared file could not be put back"):
        shared_links.relink(relinking_host(root, []), APP, RID, lambda line: None)


def test_the_report_says_whether_the_links_are_in_force(root):
    from fdeploy_agent import report
    (root / "srv/shop/slots").mkdir()
    (root / "srv/shop/slots/main").symlink_to(root / "srv/shop/releases" / RID)
    host = Host(root=str(root), run=lambda argv, merge_output=False: subprocess.CompletedProcess(argv, 0, "", ""))
    assert report.state_report(host, {"APP": "shop"}, print, 0)["sharedFilesInForce"] is True
    link = root / "srv/shop/shared/instance/config.py"
    link.unlink()
    link.write_text("stand-in\n")
    assert report.state_report(host, {"APP": "shop"}, print, 0)["sharedFilesInForce"] is False
