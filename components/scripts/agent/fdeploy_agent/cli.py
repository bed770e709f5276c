"""The agent's entry point: VERB, one JSON object on stdin, one JSON result on stdout.
`VERB [--field NAME] [--app APP] [--set KEY=TEXT] [--set-json KEY=JSON]…`: --app APP makes the
parameters {"APP": APP} (stdin is not read: delete steps and the console have none); --set and
--set-json add one parameter each (a string; any JSON value), so that bash never builds JSON.
Exit status 0 with {"ok": true, …}; 1 with {"ok": false, "error": "…"} (the error also on stderr,
as `error: …`, where the deploy's log shows it)."""
import json
import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, TextIO

from . import backup, backup_ops, backup_unit, base_system, db_move, fleet, haproxy, health, history, install, jobs, migrate_step, mounts, ops, ops_commands, pg_pin, pg_server, preflight, prune, release_commands, replica_point, rollback_loss, server_state, service, shared_files, site, slotuser, staging, supervise, switch, tls
from . import canary, haproxy_canary, lb_maintenance
from . import fleet_hold, fleet_lease, fleet_prepare, lb_session, release_peer
from . import pg_backup_delete, pg_backup_ops
from .errors import AgentError
from .host import Host

Verb = Callable[[Host, Dict[str, Any], Callable[[str], None], int], Dict[str, Any]]
VERBS: Dict[str, Verb] = {
    "env-stage": staging.env_stage,
    "unit-stage": staging.unit_stage,
    "docker-mounts": mounts.docker_mounts,
    "docker-unmount": mounts.docker_unmount,
    "preflight": preflight.preflight,
    "state-read": server_state.state_read,
    "state-fix": server_state.state_fix,
    "rollback-loss": rollback_loss.rollback_loss,
    "fleet-lease": fleet_lease.fleet_lease,
    "fleet-lease-end": fleet_lease.fleet_lease_end,
    "fleet-hold": fleet_hold.fleet_hold,   # on the deploying machine (fdeploy on a fleet)
    "slot-user": slotuser.set_slot_user,
    "shared-create": shared_files.shared_create,
    "release-install": install.release_install,
    "release-export": release_peer.release_export, "release-import": release_peer.release_import,   # a release a host never ran
    "release-copy": release_peer.release_copy,   # on the deploying machine
    "migrate": migrate_step.migrate,
    "release-commands": release_commands.release_commands,
    "service-delete": service.service_delete,
    "tls-create": tls.tls_create,
    "tls-read": tls.tls_read,
    "tls-repair": tls.tls_repair,
    "tls-delete": tls.tls_delete,
    "site-create": site.site_create,
    "site-delete": site.site_delete,
    "base-create": base_system.base_create,
    "base-delete": base_system.base_delete,
    "base-purge": base_system.base_purge,
    "ops-status": ops.ops_status,
    "ops-releases": ops.ops_releases,
    "ops-lock": ops.ops_lock,
    "logs": ops_commands.logs,
    "exec": ops_commands.exec_verb,
    "console": ops_commands.console,
    "maintenance": ops_commands.maintenance,
    "db-move-start": db_move.db_move_start, "db-move-finish": db_move.db_move_finish,   # fdeploy db migrate-to-postgres
    "jobs-check": jobs.jobs_check,
    "jobs-create": jobs.jobs_create,
    "jobs-delete": jobs.jobs_delete,
    "jobs-list": jobs.jobs_list,
    "jobs-run": jobs.jobs_run,
    "backup-claim": backup.backup_claim,
    "backup-start": backup.backup_start,
    "backup-check": backup.backup_check,
    "backup-status": backup.backup_status,
    "backup-deploy": backup_ops.backup_deploy,
    "backup-delete": backup_ops.backup_delete,
    "backup-verify": backup_ops.backup_verify,
    "backup-restore": backup_ops.backup_restore,
    "backup-report": backup_ops.backup_report,
    "backup-run": backup_unit.backup_run,
    "backup-verify-db": backup_unit.backup_verify_db,
    "backup-fetch": backup_unit.backup_fetch,
    "backup-swap": backup_unit.backup_swap,
    "backup-newdb": backup_unit.backup_newdb,
    "backup-point": replica_point.backup_point,
    "history": history.read_verb,
    "rollback-plan": history.rollback_plan,
    "prune": prune.prune,
    "health": health.health,
    "activate": switch.activate,
    "fleet-prepare": fleet_prepare.fleet_prepare,   # a fleet host's idle slot before its turn (fleet.py)
    "lb-configure": haproxy.lb_configure,
    "lb-drain": haproxy.lb_drain,
    "lb-ready": haproxy.lb_ready,
    "lb-status": haproxy.lb_status,
    "lb-session": lb_session.lb_session,   # a fleet rollout's drains and readies in one process (fleet.py)
    "lb-delete": haproxy.lb_delete,
    "lb-maintenance": lb_maintenance.lb_maintenance,
    "canary-migrations": canary.canary_migrations,   # a fleet's canary asks its first host
    "lb-canary": haproxy_canary.lb_canary,   # strategy canary on a fleet: weights and gates at the balancer
    "fleet-rollout": fleet.fleet_rollout,
    "pg-install": pg_server.pg_install,
    "pg-app": pg_server.pg_app,
    "pg-status": pg_server.pg_status,
    "pg-pin": pg_pin.pg_pin,
    "pg-backup-deploy": pg_backup_ops.pg_backup_deploy,
    "pg-backup-restore": pg_backup_ops.pg_backup_restore,
    "pg-backup-status": pg_backup_ops.pg_backup_status,
    "pgbackrest-archive-push": pg_backup_ops.pg_archive_push,
    "pg-backup-run": pg_backup_ops.pg_backup_run,
    "pg-backup-drill": pg_backup_ops.pg_backup_drill,
    "pg-backup-delete": pg_backup_delete.pg_backup_delete,
}


FIRST_LINE = {"exec", "fleet-hold", "lb-session"}   # their parameters are stdin's first line: the rest is the command's stdin (fleet-hold: its control; lb-session: its requests)


def first_line(stdin: TextIO) -> str:
    """Stdin's first line, read byte by byte from its descriptor: nothing after it is consumed."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return stdin.readline()
    out = b""
    while not out.endswith(b"\n"):
        b = os.read(fd, 1)
        if not b:
            break
        out += b
    return out.decode(errors="replace")


def lock_wait() -> int:
    v = os.environ.get("FDEPLOY_LOCK_WAIT", "120")
    return int(v) if v.isdigit() else 120


def main(argv: List[str], stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
         host: Optional[Host] = None) -> int:
    def log(line: str) -> None:
        print(line, file=stderr, flush=True)

    if argv[:1] == ["supervise"]:   # runs a step: its stdin is the step's, not read here
        return supervise.main(argv[1:], stderr=stderr)
    field: Optional[str] = None
    app: Optional[str] = None
    extra: Dict[str, Any] = {}
    ok = len(argv) % 2 == 1
    for opt, value in zip(argv[1::2], argv[2::2]):
        key, eq, text = value.partition("=")
        if opt == "--field":
            field = value
        elif opt == "--app":
            app = value
        elif opt in ("--set", "--set-json") and key and eq:
            try:
                extra[key] = text if opt == "--set" else json.loads(text)
            except ValueError:
                ok = False
        else:
            ok = False
    verb = VERBS.get(argv[0]) if argv and ok else None
    if verb is None:
        log("usage: fdeploy-agent VERB [--field NAME] [--app APP] [--set KEY=TEXT] [--set-json KEY=JSON] < params.json (verbs: %s)" % ", ".join(sorted(VERBS)))
        return 2
    try:
        try:
            if app is not None:   # stdin is not read (a delete step has none; the console's is the terminal)
                params: Any = {"APP": app}
            else:
                params = json.loads((first_line(stdin) if argv[0] in FIRST_LINE else stdin.read()) or "{}")
        except ValueError:
            raise AgentError("could not read the parameters on stdin (expected one JSON object)")
        if not isinstance(params, dict):
            raise AgentError("the parameters on stdin must be one JSON object")
        params.update(extra)
        result = verb(host or Host(), params, log, lock_wait())
    except Exception as e:   # a refusal (AgentError) names cause and fix; anything else is a bug: its traceback too
        message = str(e) if isinstance(e, AgentError) else "the server agent failed in %s: %s: %s (a bug: please report it with the lines above)" % (
            argv[0], type(e).__name__, e)
        if not isinstance(e, AgentError):
            traceback.print_exc(file=stderr)
        log("error: %s" % message)
        if field is None:
            print(json.dumps({"ok": False, "error": message}), file=stdout)
        return getattr(e, "exit_status", 1)   # 3: not deployed here (ops.NotDeployed)
    if field is not None:
        value = result.get(field, "")
        print("\n".join(map(str, value)) if isinstance(value, list) else value, file=stdout)
    else:
        print(json.dumps(dict(result, ok=True), sort_keys=True), file=stdout)
    return 0
