"""The switch's moves on one app's slots (switch.py drives them). Slots are instances of the units
fdeploy-<app>@<slot>; slots/<slot> -> a release, slots/<slot>.env its RELEASE_ID and Gunicorn
flags, slots/live the slot nginx proxies to through /run/fdeploy-<app>/live.sock (a link to that
slot's socket, re-created at boot by a tmpfiles.d entry). Strategy canary splits traffic in
/etc/fdeploy/<app>/upstream.conf (nginx -t, then a graceful reload).
The settings a slot runs with — the units and the environment file — have three copies in the
root-only /etc/fdeploy/<app>/: <name>.desired (staged by the deploy: staging.py), the file in force,
and <name>.live (what last went live). Only the switch puts the desired ones in force; a failed
switch puts the live ones back (settings_from)."""
import os
from typing import Callable, Optional

from . import gunicorn, site, slotcheck, slotuser
from .app import App
from .fsutil import read_regular, write_atomic
from .host import Host

Log = Callable[[str], None]
SETTINGS = ("socket", "service", "env")


def socket_path(app: App, slot: str) -> str:
    return "/run/fdeploy-%s/%s.sock" % (app.name, slot)


def live_socket(app: App) -> str:
    return "/run/fdeploy-%s/live.sock" % app.name


def upstream_conf(app: App) -> str:
    return site.upstream_conf(app.name)


def default_upstream(app: App) -> str:
    """Every request to the live link (site.default_upstream)."""
    return site.default_upstream(app.name).decode()


def is_split(text: Optional[bytes], app: App) -> bool:
    """upstream.conf sends traffic elsewhere than the live link (comments aside)."""
    def servers(t: str) -> list:
        return [x.strip() for x in t.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    return text is not None and servers(text.decode(errors="replace")) != servers(default_upstream(app))


def link(host: Host, target: str, path: str) -> None:
    """PATH -> TARGET in one rename: readers never see it missing."""
    tmp = "%s.tmp.%d" % (host.path(path), os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, host.path(path))


def target_of(host: Host, path: str) -> str:
    """Where the link PATH points (a server path), "" when it is no link."""
    p = host.path(path)
    if not os.path.islink(p):
        return ""
    return os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(p)))


class Slots:
    def __init__(self, host: Host, app: App, runtime: str, log: Log) -> None:
        self.host, self.app, self.runtime, self.log = host, app, runtime, log

    def unit(self, slot: str, kind: str = "service") -> str:
        return "fdeploy-%s@%s.%s" % (self.app.name, slot, kind)

    def live(self) -> str:
        """The slot nginx proxies to now ("" before the first activation)."""
        return slotuser.live_slot(self.host, self.app)

    def live_is_container(self) -> bool:
        live = self.live()
        return bool(live) and os.path.islink(self.host.path(socket_path(self.app, live)))

    def release_of(self, slot: str) -> str:
        return target_of(self.host, "%s/%s" % (self.app.slots, slot))

    def point(self, slot: str, release_dir: str, user: str) -> None:
        """SLOT runs RELEASE_DIR as USER from its next start (runtime docker: no user; the container has its own)."""
        env = gunicorn.slot_env(self.host, {"APP": self.app.name, "RELEASE_ID": os.path.basename(release_dir)}, self.log, 0)["text"]
        write_atomic(self.host.path("%s/%s.env" % (self.app.slots, slot)), env.encode(), 0o644)
        slotuser.set_slot_user(self.host, {"APP": self.app.name, "SLOT": slot, "USER": "" if self.runtime == "docker" else user}, self.log, 0)
        link(self.host, release_dir, "%s/%s" % (self.app.slots, slot))

    def start(self, slot: str) -> None:
        """(Re)start SLOT on its socket, enabled at boot. A failed start is the slot check's to report,
        with the journal's why."""
        service, sock = self.unit(slot), self.unit(slot, "socket")
        if self.runtime == "docker":
            # the container binds its own socket path; a socket unit of the python runtime goes
            self.host.run(["systemctl", "disable", "--now", "--quiet", sock])
            self.host.systemctl("enable", "--quiet", service)
        else:
            path = self.host.path(socket_path(self.app, slot))
            if os.path.islink(path):   # left by a container of the docker runtime: the socket unit binds there
                os.unlink(path)
            # `systemctl enable` reloads systemd even when both are enabled already (0.3-0.4 s); asking is 0.03 s
            r = self.host.run(["systemctl", "is-enabled", sock, service])
            if set((r.stdout or "").split()) != {"enabled"}:
                self.host.systemctl("enable", "--quiet", sock, service)
        r = self.host.run(["systemctl", "restart", service], merge_output=True)
        if r.returncode != 0:
            self.log("systemctl restart %s failed: %s" % (service, (r.stdout or "").strip()[-300:]))

    def stop(self, slot: str) -> None:
        self.host.run(["systemctl", "disable", "--now", "--quiet", self.unit(slot), self.unit(slot, "socket")])

    def is_active(self, slot: str) -> bool:
        return self.host.run(["systemctl", "is-active", "--quiet", self.unit(slot)]).returncode == 0

    def check(self, slot: str, path: str, timeout: int) -> bool:
        """The app answers PATH on SLOT's own socket (the agent's slot check)."""
        return slotcheck.check_slot(self.host, self.app, slot, path, timeout, "www-data" if self.runtime == "docker" else "",
                                    self.log, clock=self.host.clock, sleep=self.host.sleep)

    def point_nginx(self, slot: str) -> None:
        """live.sock -> SLOT's socket: one rename, no nginx reload, so no client connection is closed."""
        folder = "/run/fdeploy-%s" % self.app.name
        tmpfiles = "# Managed by flask-deploy (activate.sh): the live slot of %s\nd %s 0755 root root -\nL+ %s - - - - %s\n" % (
            self.app.name, folder, live_socket(self.app), socket_path(self.app, slot))
        os.makedirs(self.host.path("/etc/tmpfiles.d"), 0o755, exist_ok=True)
        write_atomic(self.host.path("/etc/tmpfiles.d/fdeploy-%s.conf" % self.app.name), tmpfiles.encode(), 0o644)
        os.makedirs(self.host.path(folder), 0o755, exist_ok=True)
        link(self.host, socket_path(self.app, slot), live_socket(self.app))

    def go_live(self, slot: str) -> None:
        self.point_nginx(slot)
        write_atomic(self.host.path(self.app.slots + "/live"), (slot + "\n").encode(), 0o644)

    def put_upstream(self, text: str) -> bool:
        """upstream.conf holds TEXT, nginx -t passes and nginx reloaded; False (the default upstream put
        back, nginx's words logged) when nginx refuses it."""
        path = self.host.path(upstream_conf(self.app))
        if not write_atomic(path, text.encode(), 0o644):
            return True
        r = self.host.run(["nginx", "-t"], merge_output=True)
        if r.returncode != 0:
            self.log((r.stdout or "").rstrip("\n"))
            write_atomic(path, default_upstream(self.app).encode(), 0o644)
            if self.host.run(["nginx", "-t", "-q"]).returncode == 0:
                self.host.run(["systemctl", "reload", "nginx"])
            return False
        return self.host.run(["systemctl", "reload", "nginx"]).returncode == 0

    def unsplit(self) -> bool:
        return self.put_upstream(default_upstream(self.app))

    def setting_path(self, name: str) -> str:
        return self.app.env_file if name == "env" else self.app.unit_path(name)

    def settings_from(self, which: str) -> bool:
        """Put the WHICH (desired | live) copies of the settings in force; True when one changed."""
        changed = False
        for name in SETTINGS:
            data = read_regular(self.host.path("%s/%s.%s" % (self.app.config_dir, name, which)))
            if data is not None:
                changed = write_atomic(self.host.path(self.setting_path(name)), data, 0o600 if name == "env" else 0o644) or changed
        if changed:
            self.host.systemctl("daemon-reload")
        return changed

    def keep_live_settings(self) -> None:
        for name in SETTINGS:
            data = read_regular(self.host.path(self.setting_path(name)))
            if data is not None:
                write_atomic(self.host.path("%s/%s.live" % (self.app.config_dir, name)), data, 0o600)
