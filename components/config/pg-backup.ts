// `backup` on a stack whose PostgreSQL the stack manages (database.engine postgres): pgBackRest, not
// Litestream (components/pg-backup.ts). Same target shape, retention and verifyEvery; what does not
// apply there is refused here, naming the key and the expected form, before anything on a server changes.
import { DeployConfig, NAMESPACE, parseReplicaUrl } from "./schema";

/** Debian 12's pgBackRest; SFTP repositories came with 2.46. */
export const PGBACKREST_VERSION = "2.45";

/** Whether CFG's backup is pgBackRest's: a PostgreSQL the stack manages (not database.url, not SQLite). */
export function pgBackupApplies(cfg: Pick<DeployConfig, "database" | "backup">): boolean {
  return cfg.backup !== undefined && cfg.database !== undefined && !("url" in cfg.database);
}

export function checkPgBackup(cfg: DeployConfig): string[] {
  if (!pgBackupApplies(cfg)) return [];
  const b = cfg.backup!;
  const problems: string[] = [];
  if (parseReplicaUrl(b.replica)?.type === "sftp") {
    problems.push(`${NAMESPACE}:backup.replica: sftp:// is not supported with database.engine postgres; expected s3://bucket[/path]\n` +
      `Debian 12's pgBackRest is ${PGBACKREST_VERSION} and SFTP repositories need pgBackRest 2.46 or later: use an S3-compatible target ` +
      "(backup.endpoint and backup.region for one not on AWS)");
  }
  if (b.endpoint?.startsWith("http://")) {
    problems.push(`${NAMESPACE}:backup.endpoint: pgBackRest reaches S3 over HTTPS only; expected https://host[:port] (a certificate the database server trusts)`);
  }
  if (b.databases.length) {
    problems.push(`${NAMESPACE}:backup.databases: remove it; with database.engine postgres pgBackRest backs up the whole server\n` +
      "(backup.databases lists SQLite files, which Litestream replicates)");
  }
  if (b.beforeChange === "replica") {
    problems.push(`${NAMESPACE}:backup.beforeChange: replica is for SQLite; with database.engine postgres expected copy (a pg_dump before each migration)`);
  }
  return problems;
}
