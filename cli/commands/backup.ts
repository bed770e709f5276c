// fdeploy backup verify|restore|status [--timestamp T]  (also: npm run backup -- …)
//
// Offsite backups on the stack's server (the agent's backup-verify|restore|report, README "Offsite backups"):
//   verify   restores the latest replica to a temporary file on the server, runs PRAGMA
//            integrity_check and compares row counts with the live database (changes nothing)
//   restore  stops the app and replication, restores every database from the replica (to
//            --timestamp, or the latest), keeps the old files aside, starts both again; with
//            --txid only the app's database (or --db's), to that restore point (a deploy's undo
//            with backup.beforeChange: replica prints it)
//   status   replication running, whose the replica is (the lease), each database's lag and the
//            age of the replica's newest write, the last scheduled drill
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { runOnServer } from "../lib/stack";
import { isPgBackup, pgBackup } from "./pg-backup";

const VERBS = ["verify", "restore", "status"];
/** The server agent's verb for each action (components/scripts/agent/fdeploy_agent/backup_ops.py). */
const AGENT_VERBS: Record<string, string> = { verify: "backup-verify", restore: "backup-restore", status: "backup-report" };

export function register(program: Command): void {
  stackCommand(program, "backup", "offsite backups: verify a restore, restore in place, or show replication status")
    .argument("<action>", VERBS.join(" | "))
    .option("--timestamp <time>", "restore: the point in time, e.g. 2026-12-05T07:00:00Z (default: the latest)")
    .option("--txid <txid>", "restore: the app's database only, to this restore point (16 hex digits, as a deploy's `undo:` line printed it)")
    .option("--db <path>", "restore --txid: the database, relative to shared/ (default db/app.sqlite3), as the undo: line named it")
    .action((action: string, opts: StackOpts & { timestamp?: string; txid?: string; db?: string }) => {
      if (!VERBS.includes(action)) throw new FdeployError(`fdeploy backup: expected one of ${VERBS.join(", ")}, got '${action}'`, 2);
      const { ref, cfg } = target(opts);
      if (!cfg.backup) throw new FdeployError(`stack ${ref.stack} has no offsite backup (set backup.replica, see README "Offsite backups")`, 2);
      if (isPgBackup(cfg)) {
        if (opts.txid !== undefined || opts.db !== undefined) throw new FdeployError("fdeploy backup: --txid and --db are for SQLite (Litestream); with PostgreSQL use --timestamp", 2);
        return pgBackup(cfg, action, opts.timestamp);
      }
      if (opts.txid !== undefined && (action !== "restore" || opts.timestamp || !/^[0-9a-f]{16}$/.test(opts.txid))) {
        throw new FdeployError("fdeploy backup: --txid is for restore, without --timestamp: 16 hex digits, e.g. 00000000000001a2", 2);
      }
      if (opts.db !== undefined && !opts.txid) throw new FdeployError("fdeploy backup: --db is for restore --txid", 2);
      const params = { APP: cfg.appName, ...(opts.timestamp ? { TIMESTAMP: opts.timestamp } : {}), ...(opts.txid ? { TXID: opts.txid } : {}),
        ...(opts.db ? { DB: opts.db } : {}) };
      const { status } = runOnServer(cfg, "agent", AGENT_VERBS[action], params, { args: ["--field", "summary"] });
      if (status !== 0) throw new FdeployError(`fdeploy backup ${action} failed (exit ${status}); the lines above say why`);
    });
}
