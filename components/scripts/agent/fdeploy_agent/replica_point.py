"""The replica's restore point as the undo of a change (backup.beforeChange: replica), as the app user
in the backup units' sandbox (root's copy of the agent, backup_ops.as_app):
  backup-point  params APP, DB, WAIT (seconds): the lease must be this server's; Litestream's local
                position is read once its monitor has seen every write committed before the call,
                then the replica is polled until a file there covers that position (at most WAIT s):
                {"txid", "time" (the covering file's), "waited"} or {"why"} (not usable: the reason)
A point is restorable with `litestream restore -txid TXID` (fdeploy backup restore --txid)."""
import json
import time
from typing import Any, Callable, Dict, Optional

from . import backup, backup_unit
from .host import Host

Log = Callable[[str], None]
# Litestream v0.5 reads the WAL every second (its monitor interval): a read of the local position
# after this long includes every transaction committed before the step began
MONITOR_SECONDS = 1.5
POLL_SECONDS = 0.5


def local_txid(status_json: str) -> Optional[int]:
    """`litestream status -json DB`: the local position (None when unknown)."""
    try:
        return int(json.loads(status_json)[0]["local_txid"], 16)
    except (ValueError, LookupError, TypeError):
        return None


def covering(ltx_json: str, txid: int, local_now: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """`litestream ltx -json DB`: the replica's file that holds TXID (its first file whose range
    reaches it), as {"txid", "time"}; None when the replica does not reach TXID yet, or when it is
    ahead of LOCAL_NOW (read after it): Litestream uploads only this database's positions, so a
    replica beyond them holds another line of history (another server's, before this one's first
    snapshot there) and TXID in it is not this database's state."""
    try:
        files = json.loads(ltx_json) or []
        newest = max((int(f["max_txid"], 16) for f in files), default=0)
        reach = [f for f in files if int(f["max_txid"], 16) >= txid]
        best = min(reach, key=lambda f: (int(f["max_txid"], 16), str(f["timestamp"]))) if reach else None
    except (ValueError, LookupError, TypeError):
        return None
    if best is None or (local_now is not None and newest > local_now):
        return None
    return {"txid": "%016x" % txid, "time": str(best["timestamp"])}


def wait_for_point(read_local: Callable[[], str], read_replica: Callable[[], "tuple[bool, str]"], wait: float,
                   clock: Callable[[], float], sleep: Callable[[float], None]) -> Dict[str, Any]:
    """The decision, with the reads and the clock as seams: the point or why not (within WAIT s)."""
    t0 = clock()
    sleep(MONITOR_SECONDS)
    txid = local_txid(read_local())
    if txid is None:
        return {"why": "Litestream has no local position for the database yet"}
    while True:
        ok, out = read_replica()
        if not ok:
            return {"why": "the replica cannot be read (%s)" % out[:200]}
        point = covering(out, txid, local_txid(read_local()))
        if point is not None:
            return dict(point, waited=round(clock() - t0, 1))
        if clock() - t0 >= wait:
            return {"why": "the replica did not reach the database's position %016x within %d s" % (txid, wait)}
        sleep(POLL_SECONDS)


def backup_point(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (as the app user): the replica's restore point covering DB now, or why there is none."""
    conf, db, _ = backup_unit._db(host, params)
    wait = float(params.get("WAIT") or 30)
    status = backup.fence(host, str(params.get("APP")), log)
    if status != "ours":
        return {"why": "the replica's lease is not this server's (%s)" % status}
    ls, config = conf["LITESTREAM"], conf["CONFIG"]

    def read_local() -> str:
        return host.run([ls, "status", "-config", config, "-json", db]).stdout or ""

    def read_replica() -> "tuple[bool, str]":
        r = host.run([ls, "ltx", "-config", config, "-json", db])
        return r.returncode == 0, (r.stdout or "") if r.returncode == 0 else " ".join((r.stderr or "").split())

    return wait_for_point(read_local, read_replica, wait, time.monotonic, time.sleep)
