// fdeploy backup verify|restore|status for a stack whose PostgreSQL the stack manages (issue 33): pgBackRest
// on the database server (the agent's pg-backup-drill|restore|status there, fdeploy_agent/pg_backup_ops.py).
//   restore  maintenance on (the app servers), postgres stopped, pgbackrest restore --type=time to
//            --timestamp (default: the newest archived WAL), started, maintenance off
//   verify   the restore drill: the latest backup restored into a temporary folder and started, tables counted
//   status   the last backup, the archive's age, whose the repository is (the lease)
import { AppTarget, runOnServer } from "../lib/stack";
import { FdeployError } from "../lib/errors";

const AGENT_VERBS: Record<string, string> = { verify: "pg-backup-drill", restore: "pg-backup-restore", status: "pg-backup-status" };

/** Whether CFG's `fdeploy backup` is pgBackRest's (a database server the stack manages). */
export function isPgBackup(cfg: AppTarget): boolean {
  return cfg.database !== undefined && "server" in cfg.database;
}

export function pgBackup(cfg: AppTarget, action: string, timestamp?: string): void {
  const d = cfg.database as { server: AppTarget["server"] };
  const db = { appName: cfg.appName, server: d.server };
  if (timestamp !== undefined && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/.test(timestamp)) {
    throw new FdeployError(`fdeploy backup restore --timestamp: expected a UTC time like 2026-12-05T07:00:00Z, got '${timestamp}'`, 2);
  }
  const maintenance = (mode: "on" | "off") => {
    const r = runOnServer(cfg, "agent", "maintenance", { APP: cfg.appName, MODE: mode, MESSAGE: "Restoring the database from its backup.", HTML: "" },
      { args: ["--field", "message"] });
    if (r.status !== 0) throw new FdeployError(`maintenance ${mode} failed on ${cfg.server.host} (exit ${r.status}; see above)`);
  };
  if (action === "restore") maintenance("on");
  const { status } = runOnServer(db, "agent", AGENT_VERBS[action], { APP: cfg.appName, ...(timestamp ? { TIMESTAMP: timestamp } : {}) },
    { args: ["--field", "summary"] });
  if (status !== 0) {
    const stays = action === "restore" ? "\nthe app stays in maintenance: fdeploy maintenance off once the database serves" : "";
    throw new FdeployError(`fdeploy backup ${action} failed on the database server ${d.server.host} (exit ${status}): the lines above say why${stays}`);
  }
  if (action === "restore") maintenance("off");
}
