"""pg-backup-delete (issue 33): `backup` removed from the stack (or pulumi destroy) stops pgBackRest on the
database server. WAL archiving off (archive_mode needs a restart: with it on and an empty archive_command
PostgreSQL keeps every WAL segment, and a revoked bucket or key would fail archive_command forever, either
way until pg_wal fills the disk), the timers disabled and removed, pgbackrest.conf (the S3 keys), backup.json
and the drop-in removed. The repository is left as it is (its backups, its lease): delete it yourself.
Safe to re-run after a crash at any line: the settings go first, backup.json (which says whose it is) last."""
import os
from typing import Any, Callable, Dict

from . import pg_backup as pb
from .app import check_name
from .fsutil import read_regular
from .host import Host
from .pg_server import cluster, psql, server_lock

Log = Callable[[str], None]
ARCHIVING = ("archive_mode", "archive_command", "archive_timeout", "wal_recycle")   # pg_backup.wanted_settings but wal_level (the default)


def pg_backup_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = check_name(params.get("APP"))
    with server_lock(host, lock_wait, log):
        owner = pb.other_app(read_regular(host.path(pb.SETTINGS)), app)
        if owner:
            log("this database server's backup is app '%s''s, not '%s': left as it is" % (owner, app))
            return {"removed": False}
        version, name, state = cluster(host)
        unit = "postgresql@%s-%s" % (version, name)
        if state != "online":
            host.systemctl("start", unit)
        was_on = psql(host, "SELECT setting FROM pg_settings WHERE name = 'archive_mode';") != "off"
        psql(host, "".join("ALTER SYSTEM RESET %s;\n" % k for k in ARCHIVING))
        if was_on:
            log("WAL archiving off: restarting PostgreSQL %s/%s (archive_mode)" % (version, name))
            host.systemctl("restart", unit)
        else:
            psql(host, "SELECT pg_reload_conf();")
        units = list(pb.UNITS.values())
        host.run(["systemctl", "disable", "--now", "--quiet", *units])
        for path in ["/etc/systemd/system/" + n for n in units] + [pb.DROPIN, pb.CONF, pb.FENCE_CACHE, pb.SETTINGS]:
            if os.path.lexists(host.path(path)):
                os.unlink(host.path(path))
        host.systemctl("daemon-reload")
        log("pgBackRest backup of this database server stopped (WAL archiving off, timers removed); the repository is left as it is")
        return {"removed": True}
