"""`activate`: the switch point of every deploy (components/activation.ts). Makes RELEASE_ID the live
release with the stack's strategy, health-checks it on its own socket, keeps the previous release
serving if it fails, and records the activation. One deploy lock around all of it.

params: APP, RELEASE_ID, STRATEGY (restart | rolling | blue-green | canary), HEALTH_PATH,
HEALTH_TIMEOUT, KEEP_RELEASES, APP_MODULE, ROLLBACK (a rollback pinned this kept release: recorded
as one), FLEET_BACK (a failed fleet rollout sends this host back: the settings RELEASE_ID ran with
before, settings_back.py), CANARY_* (canary_flow.py), RUNTIME (python | docker: the slots are containers of the image
fdeploy-<app>:<id>; no preflight, a new slot's own check catches what does not load); others (unit,
env revisions) only make Pulumi re-run it; IMAGE_ID (docker) is the image this host's build made (release_image.py). Result: the history after it (history-live's).

The transaction rule: the staged settings go in force together with the release (slots.py
settings_from desired); any failure puts the live ones back and leaves the release, slot, live link
and upstream that served before in force. Each strategy is a chain of named states; `trail` records
the ones passed (tests read it):
  restart     preflight -> slot restarted -> checked -> live          (check failed -> switched back)
  rolling     preflight -> probe checked -> traffic on probe -> restart's chain -> probe stopped
  blue-green  preflight -> idle slot checked -> live -> old slot stopped
  prepared    (a fleet host, PREPARED: fleet_prepare.py started and checked the release on the idle slot
              before the host's turn) that slot checked -> live; the old slot keeps running (its in-flight
              requests finish) until the rollout's tidy stops it, and a fleet that sends the host back
              (FLEET_BACK) flips to it the same way. A slot that no longer runs the release: the strategy's
              own chain
  canary      canary_flow.py; falls back to blue-green (and says why) when it cannot compare or split
Runtime docker (or a live container replaced by the python runtime) under restart goes rolling: no
socket unit can hold the live slot's connections while its container is replaced."""
import json
import os
import re
import signal
import time
from typing import Any, Callable, Dict, List, Optional

from . import app as apps
from . import canary_flow, history, lease, live, preflight, prune, release_image, settings_back, shared_links, slotuser
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .lock import deploy_lock
from .slots import Slots, is_split, link, socket_path, live_socket, target_of, upstream_conf

Log = Callable[[str], None]
STRATEGIES = ("restart", "rolling", "blue-green", "canary")


def drain_seconds() -> float:
    v = os.environ.get("FDEPLOY_DRAIN_SECONDS", "1")
    return float(v) if re.fullmatch(r"[0-9]{1,3}(\.[0-9]+)?", v) else 1.0


class Switch:
    def __init__(self, host: Host, params: Dict[str, Any], log: Log, bundle: str = live.BUNDLE) -> None:
        self.host, self.params, self.log, self.bundle = host, dict(params), log, bundle
        self.app = apps.load(host, apps.check_name(params.get("APP")))
        self.rid = str(params.get("RELEASE_ID", ""))
        if not re.fullmatch(r"[0-9a-f]{12}", self.rid):
            raise AgentError("bad release id %r" % self.rid)
        self.health = str(params.get("HEALTH_PATH", ""))
        if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", self.health):
            raise AgentError("bad health path %r (flask-deploy:healthPath: e.g. /health)" % self.health)
        timeout, keep = str(params.get("HEALTH_TIMEOUT", "")), str(params.get("KEEP_RELEASES", ""))
        if not re.fullmatch(r"[0-9]{1,3}", timeout) or not re.fullmatch(r"[0-9]{1,2}", keep):
            raise AgentError("bad timeout or keep count (HEALTH_TIMEOUT %r, KEEP_RELEASES %r)" % (timeout, keep))
        self.timeout = int(timeout)
        self.runtime = str(params.get("RUNTIME") or "python")
        if self.runtime not in ("python", "docker"):
            raise AgentError("bad runtime %r (flask-deploy:runtime: python or docker)" % self.runtime)
        self.strategy = str(params.get("STRATEGY", ""))
        if self.strategy not in STRATEGIES:
            raise AgentError("unknown strategy %r (flask-deploy:strategy: restart, rolling, blue-green or canary)" % self.strategy)
        self.rollback = bool(params.get("ROLLBACK"))
        self.release = "%s/releases/%s" % (self.app.root, self.rid)
        self.slots = Slots(host, self.app, self.runtime, log)
        self.trail: List[str] = []
        self.new_user = self.live_user = ""
        self.canary_slot = ""   # a canary's new slot while it takes traffic: a failure sends the traffic back
        self.prepared = ""      # a slot running this release idle that goes live as it is (prepared_slot)

    def enter(self, state: str) -> None:
        self.trail.append(state)

    def drain(self) -> None:
        self.host.sleep(drain_seconds())

    # --- the transaction

    def run(self) -> Dict[str, Any]:
        self.check_release()
        was_live = next(iter(history.live_ids(history.entries(self.host, self.app))), "")
        self.slots.settings_from(self.settings_source(was_live))
        self.enter("settings-desired")
        try:
            self.recover_canary()
            self.prepared = self.prepared_slot()
            # a prepared slot runs as the new release's user already: new-release-user would kill it
            users = ([slotuser.user_of_slot(self.host, self.app, self.prepared), slotuser.live_user(self.host, self.app)] if self.prepared
                     else slotuser.new_release_user(self.host, {"APP": self.app.name}, self.log, 0)["users"])
            self.new_user, self.live_user = users[0], users[1] or self.app.user
            self.strategies()
            self.retire_legacy_probe()
            link(self.host, self.release, self.app.root + "/current")
            result = self.record("live")
        except BaseException:
            self.enter("failed")
            try:
                self.canary_back()
            finally:
                if self.slots.settings_from("live"):
                    self.log("the settings the live release ran with are in force again")
                self.enter("settings-live")
            raise
        settings_back.remember(self.host, self.app, was_live, self.rid)
        self.slots.keep_live_settings()
        live.went_live(self.host, self.params, self.log, 0, bundle=self.bundle)
        # the parameters of the activation that went live: what state.sh repairs to
        write_atomic(self.host.path(self.app.slots + "/activation.live.json"), json.dumps(self.params, indent=1, sort_keys=True).encode(), 0o600)
        self.remove(self.app.slots + "/activation.json")   # written by older versions
        if not self.prepared:   # a fleet's flip: its rollout's tidy prunes, after every host's turn (a venv's removal takes seconds)
            self.prune_old()
        # the environment file used to live in the app-writable shared/; unlink never follows a link
        self.remove(self.app.root + "/shared/.env")
        self.log("live release: %s (%s), activated %s" % (self.rid, self.strategy, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        self.enter("recorded")
        return result

    def settings_source(self, was_live: str) -> str:
        """desired (the staged settings), or with FLEET_BACK (a fleet rollout that failed sends this host
        back) the ones this release ran with before WAS_LIVE replaced it (settings_back.py)."""
        if not self.params.get("FLEET_BACK"):
            return "desired"
        if settings_back.usable(self.host, self.app, self.rid, was_live):
            self.log("going back to %s with the units and environment it ran with" % self.rid)
            return "previous"
        self.log("warning: the settings %s ran with before %s are not kept here: it goes back with the staged ones" % (self.rid, was_live or "(none)"))
        return "desired"

    def check_release(self) -> None:
        """What must hold before anything changes."""
        if read_regular(self.host.path(self.release + "/.fdeploy-release.json")) is None:
            raise AgentError("release %s is not installed on this server (pulumi up installs it)" % self.rid)
        entries = history.entries(self.host, self.app)
        # FLEET_PEER: a fleet's later host whose pinned release came from the first host (release_peer.py): the
        # first host's history vouches for it (the rollback's plan came from there)
        if self.rollback and not self.params.get("FLEET_PEER") and history.schema_of(entries, self.rid) is None:
            raise AgentError("release %s never went live on this server: a rollback (the stack's `release` setting) can only pin one that did"
                             " (see the releaseHistory output)" % self.rid)
        own_dir(self.host.path(self.app.slots), 0o755)
        if self.runtime == "docker":   # the image this host's engine built for the release (release_image.py)
            release_image.checked(self.host, self.app.name, self.rid, self.params)
        else:   # the release loads the rendered shared files, never stand-ins the live app put in their place
            shared_links.relink(self.host, self.app, self.rid, self.log)

    def remove(self, path: str) -> None:
        """rm -f PATH (unlink never follows a link); what cannot go (a folder) is left, said once."""
        try:
            os.unlink(self.host.path(path))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log("warning: could not remove %s (%s)" % (path, e.strerror))

    def record(self, status: str) -> Dict[str, Any]:
        """The activation's entry in the history (history.py), with the strategy that ran."""
        params = {"APP": self.app.name, "RELEASE_ID": self.rid, "STRATEGY": self.strategy, "ROLLBACK": "1" if self.rollback else ""}
        self.enter("recorded-" + status)
        return (history.record_live if status == "live" else history.record_failed)(self.host, params, self.log, 0)

    def strategies(self) -> None:
        if self.prepared:
            self.flip(self.prepared)
        elif self.strategy == "restart":
            if self.runtime == "docker" or self.slots.live_is_container():
                self.rolling()
            else:
                self.restart()
        elif self.strategy == "rolling":
            self.rolling()
        elif self.strategy == "blue-green":
            self.blue_green()
        else:
            canary_flow.canary(self)

    # --- the steps the strategies share

    def preflight(self, mode: str) -> None:
        """The agent loads the release's app as its slot would and GETs the health path once
        (preflight.py); mode light beside a live slot. None for runtime docker or without APP_MODULE
        (activation settings an older version saved): the slot's check decides."""
        if not self.params.get("APP_MODULE") or self.runtime == "docker":
            return
        started = self.host.clock()
        self.enter("preflight")
        try:
            preflight.check(self.host, self.params, self.log, 0, mode)
        except AgentError:
            self.record("failed")
            self.log("preflight: release %s failed after %ds" % (self.rid, self.host.clock() - started))
            raise

    def start_checked(self, slot: str, where: str) -> None:
        """The release on SLOT, which takes no traffic yet, started and checked; a failed check stops
        SLOT, records the release failed and ends the deploy."""
        self.slots.point(slot, self.release, self.new_user)
        self.slots.start(slot)
        self.checked(slot, where)

    def checked(self, slot: str, where: str) -> None:
        """start_checked's check of SLOT."""
        if not self.slots.check(slot, self.health, self.timeout):
            self.slots.stop(slot)
            self.record("failed")
            raise AgentError("release %s failed its health check on %s (flask-deploy:healthPath)" % (self.rid, where))
        self.enter("checked-" + slot)

    def last_healthy(self) -> str:
        """The newest release that went live (not this one) and is still installed: never a failed one."""
        for rid in history.live_ids(history.entries(self.host, self.app)):
            if rid != self.rid and history.is_kept(self.host, self.app, rid):
                return "%s/releases/%s" % (self.app.root, rid)
        return ""

    # --- the strategies

    def restart(self, probe_passed: bool = False) -> None:
        """The live slot restarts on the new code (connections wait in its socket's backlog); a failed
        check puts the previous release back on it with its own settings."""
        slot = self.slots.live() or "main"
        previous = self.slots.release_of(slot)
        if previous and previous != self.release:   # back to the last healthy release, not whatever the slot ran last
            previous = self.last_healthy() or previous
        if not probe_passed:
            self.preflight("switch")
        self.slots.point(slot, self.release, self.new_user)
        self.slots.start(slot)
        self.enter("restarted-" + slot)
        if not self.slots.check(slot, self.health, self.timeout):
            self.record("failed")
            self.slots.settings_from("live")   # the previous release runs with the settings it ran with
            if previous:
                self.log("switching back to the previous release %s and its settings" % os.path.basename(previous))
                self.slots.point(slot, previous, self.live_user)
                self.slots.start(slot)
                self.enter("switched-back")
                if not self.slots.check(slot, self.health, self.timeout):
                    self.log("the previous release does not answer either")
            raise AgentError("release %s failed its health check (flask-deploy:healthPath); it is not live" % self.rid)
        self.enter("checked-" + slot)
        self.slots.go_live(slot)
        self.enter("live-" + slot)

    def rolling(self) -> None:
        """A throw-away probe slot proves the release and carries the traffic while the live slot
        restarts as in restart (a fresh process), then the traffic returns to the live slot."""
        live_slot = self.slots.live()
        self.preflight("light" if live_slot else "switch")
        slot = live_slot or "main"
        self.start_checked("probe", "the probe slot; the live release is untouched")
        if self.slots.is_active(slot):
            self.slots.point_nginx("probe")
            self.enter("traffic-probe")
            self.drain()   # requests already connected to the live slot get going
        try:
            self.restart(probe_passed=True)
        except BaseException:
            self.slots.point_nginx(slot)   # restart put the previous release back on the slot
            self.slots.stop("probe")
            self.enter("probe-stopped")
            raise
        self.drain()   # requests on the probe finish before it stops
        self.slots.stop("probe")
        self.enter("probe-stopped")

    def flip(self, slot: str) -> None:
        """SLOT, which runs the release already (prepared_slot), checked again (it answers at once) and made
        live; the old slot keeps running until the fleet's tidy (fleet_prepare.py). A failed check stops SLOT."""
        self.checked(slot, "slot %s; slot %s keeps serving" % (slot, self.slots.live() or "none"))
        self.slots.go_live(slot)
        self.enter("live-" + slot)

    def blue_green(self) -> None:
        """The release on the idle slot, checked there, then nginx switched to it; the old slot drained
        and stopped. A failed check stops the idle slot and leaves the live one untouched."""
        live_slot = self.slots.live()
        self.preflight("light" if live_slot else "switch")
        idle = idle_slot(live_slot)
        self.start_checked(idle, "slot %s; slot %s keeps serving" % (idle, live_slot or "none"))
        self.slots.go_live(idle)
        self.enter("live-" + idle)
        if live_slot and live_slot != idle:
            self.drain()
            self.slots.stop(live_slot)   # SIGTERM: Gunicorn finishes in-flight requests first
            self.enter("stopped-" + live_slot)

    # --- a fleet host's part before its turn (fleet_prepare.py)

    def preparable(self) -> str:
        """The idle slot fleet-prepare can start this release on, "" where the host's turn runs the whole switch:
        strategy canary (it splits the live traffic), runtime docker, nothing live yet (its site comes with
        the switch), this release live already, or traffic split by an interrupted canary."""
        live_slot = self.slots.live()
        if not self.flippable() or self.slots.release_of(live_slot) == self.release:
            return ""
        return idle_slot(live_slot)

    def flippable(self) -> bool:
        """A slot running the release beside the live one can simply go live (not so for canary, docker, a split)."""
        return not (self.strategy == "canary" or self.runtime == "docker" or not self.slots.live() or self.slots.live_is_container()
                    or is_split(read_regular(self.host.path(upstream_conf(self.app))), self.app))

    def prepare(self) -> str:
        """The release started and checked on the idle slot (preflight first), which takes no traffic; then the
        settings the live release runs with are in force again, so what the host serves is unchanged until its
        turn. The slot ("" none: preparable); a failure stops it, records the release failed and raises."""
        idle = self.preparable()
        if not idle:
            return ""
        self.check_release()
        self.slots.settings_from("desired")   # the idle slot starts with the deploy's staged settings
        try:
            self.new_user = slotuser.new_release_user(self.host, {"APP": self.app.name}, self.log, 0)["users"][0]
            self.preflight("light")
            self.start_checked(idle, "slot %s, prepared; slot %s keeps serving" % (idle, self.slots.live()))
        finally:
            self.slots.settings_from("live")
        self.log("prepared: release %s runs on slot %s (checked), not live yet" % (self.rid, idle))
        return idle

    def prune_old(self) -> None:
        try:
            prune.prune(self.host, self.params, self.log, 0, bundle=self.bundle)
        except Exception as e:   # pruning is housekeeping: the next deploy tries again
            self.log("warning: pruning old releases failed (%s); the next deploy tries again" % e)

    def tidy(self) -> List[str]:
        """Every slot but the live one stopped (the rollout ended: the old slots its flips kept, the prepared
        ones of hosts whose turn never came), then what the flip left to prune pruned; the slots stopped."""
        live_slot, stopped = self.slots.live(), []
        for slot in FLIP_SLOTS:
            if slot != live_slot and self.slots.is_active(slot):
                self.slots.stop(slot)
                stopped.append(slot)
        if stopped:
            self.log("stopped slot %s (%s live on slot %s)" % (", ".join(stopped), os.path.basename(self.slots.release_of(live_slot)), live_slot))
        self.prune_old()
        return stopped

    def prepared_slot(self) -> str:
        """The slot that goes live as it is: PREPARED (fleet-prepare's), or for a fleet sending the host back
        (FLEET_BACK) the old slot its flip kept, when it runs this release beside the live one; "" else (the
        whole switch: said when PREPARED was asked for)."""
        asked = str(self.params.get("PREPARED") or "")
        candidates = [asked] if asked else [s for s in FLIP_SLOTS if self.params.get("FLEET_BACK")]
        if not candidates:   # a single server's activation: nothing asked, nothing read
            return ""
        live_slot = self.slots.live()
        if self.flippable():
            for slot in candidates:
                if slot in FLIP_SLOTS and slot != live_slot and self.slots.release_of(slot) == self.release and self.slots.is_active(slot):
                    return slot
        if asked:
            self.log("the prepared slot %s does not run release %s idle: the whole switch (%s) runs" % (asked, self.rid, self.strategy))
        return ""

    # --- leftovers of earlier runs

    def recover_canary(self) -> None:
        """An interrupted canary (the deploy was killed mid-way): traffic back to the live slot, its
        new slot stopped. Every activation starts with this, whatever its strategy."""
        canary_flow.recover(self)

    def canary_back(self) -> None:
        canary_flow.back(self)

    def retire_legacy_probe(self) -> None:
        """Versions before strategy canary named rolling's probe slot `canary`: once nginx no longer
        proxies to it, its link, .env and units go."""
        slots = self.app.slots
        left = (os.path.lexists(self.host.path(slots + "/canary")) or os.path.lexists(self.host.path(slots + "/canary.env"))
                or self.host.run(["systemctl", "is-enabled", "--quiet", self.slots.unit("canary", "socket")]).returncode == 0)
        if not left or target_of(self.host, live_socket(self.app)) == socket_path(self.app, "canary"):
            return
        self.slots.stop("canary")
        self.remove(slots + "/canary")
        self.remove(slots + "/canary.env")
        self.log("removed the slot 'canary' left by an older version's rolling strategy")
        self.enter("legacy-probe-retired")


FLIP_SLOTS = ("main", "blue", "green")   # the slots a release goes live on (probe and canary are a strategy's own)


def idle_slot(live_slot: str) -> str:
    """The slot blue-green starts a new release on beside LIVE_SLOT."""
    return "green" if live_slot == "blue" else "blue"


def _stopped(signum: int, frame: Optional[Any]) -> None:
    raise AgentError("the switch was stopped by signal %d (its time limit timeouts.default, or pulumi cancelled): the live release and its settings"
                     " are back in force" % signum)


def activate(host: Host, params: Dict[str, Any], log: Log, lock_wait: int, bundle: str = live.BUNDLE) -> Dict[str, Any]:
    """The verb: validates, takes the deploy lock, runs the switch; a SIGTERM (the step's time limit,
    its SSH session gone) unwinds it like any failure."""
    sw = Switch(host, params, log, bundle)
    return locked(sw, lock_wait, sw.run)


def locked(sw: Switch, lock_wait: int, step: Callable[[], Any]) -> Any:
    """STEP inside the deploy lock; a SIGTERM or SIGHUP unwinds it like any failure."""
    old = {s: signal.signal(s, _stopped) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with deploy_lock(sw.host, sw.app.name, lock_wait, sw.log, deploy=lease.deploy_of(sw.params)):
            return step()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
