// pgBackRest backups of the PostgreSQL server the stack manages (issue 33; `backup` with database.engine
// postgres): continuous WAL archiving and daily full/differential backups to the S3-compatible target
// `backup.replica` names (the server agent's pg-backup-deploy: scripts/agent/fdeploy_agent/pg_backup_ops.py).
// It runs on the database server after pg-install and before the app's role and database (pg-app): a
// brand-new database server (no app database yet) whose repository holds a backup is restored from it
// first (server loss: one `pulumi up` with the new database.host), then the app servers get the new
// DATABASE_URL. The repository holds the same lease as Litestream's replica (backup_lease.py): a deploy
// to an old database server that comes back is refused before anything on it changes, and it never
// archives into the repository again. The S3 keys travel on stdin (secret in state) and live in a
// root:postgres 0640 file on the server.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { BackupConfig, parseReplicaUrl } from "./config";
import { Connection } from "./connection";
import { AGENT, agentResult, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface PgBackupArgs {
  /** The database server's connection and script bundle (the DatabaseServer's). */
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  backup: BackupConfig;
  secrets: pulumi.Input<{ accessKeyId?: string; secretAccessKey?: string }>;
  after: pulumi.Resource[];
}

/** The agent's parameters for pg-backup-deploy (no secret but CREDENTIALS). */
export function pgBackupParams(args: Pick<PgBackupArgs, "appName" | "backup" | "connection">): Record<string, pulumi.Input<string>> {
  const b = args.backup;
  const t = parseReplicaUrl(b.replica)!;
  if (t.type !== "s3") throw new Error("pgBackRest: an s3:// target only (config/pg-backup.ts refuses the others)");
  return {
    APP: args.appName, HOST: args.connection.host, R_BUCKET: t.bucket, R_PATH: t.path, ENDPOINT: b.endpoint ?? "", REGION: b.region ?? "",
    RETENTION: b.retention, SYNC_INTERVAL: b.syncInterval, VERIFY_EVERY: b.verifyEvery ?? "", TAKEOVER: b.takeover ?? "",
  };
}

export class PgBackup extends pulumi.ComponentResource {
  /** Restored (a brand-new server), archiving on, a backup in the repository: the app's database comes after it. */
  public readonly step: command.remote.Command;

  constructor(name: string, args: PgBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:PgBackup", name, {}, opts);
    const creds = pulumi.secret(pulumi.output(args.secrets).apply((s) => JSON.stringify({ accessKeyId: s.accessKeyId ?? "", secretAccessKey: s.secretAccessKey ?? "" })));
    this.step = remoteStep(`${name}-pgbackrest`, {
      connection: args.connection, bundle: args.bundle, script: AGENT, verb: "pg-backup-deploy", limit: "build",
      // backup removed: archiving off, timers and the S3 keys gone (pg_backup_delete.py); the repository stays
      deleteWith: args.appName, deleteVerb: "pg-backup-delete",
      params: scriptParams({ ...pgBackupParams(args), CREDENTIALS: creds }),
      // no triggers: a new database server (connection) or new settings (stdin) run create again there
      after: args.after,
    }, this);
    agentResult(pulumi.unsecret(this.step.stdout)).apply((r) => {
      for (const line of (r as { say?: string[] }).say ?? []) {
        if (line.startsWith("warning: ")) pulumi.log.warn(line.slice("warning: ".length), this);
        else pulumi.log.info(line, this);
      }
    });
    this.registerOutputs({});
  }
}
