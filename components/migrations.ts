// Migration runner: uploads the SQL migrations (content-addressed, like releases) and runs
// scripts/migrate.py on the server after the release is installed and before the switch. It runs
// only when the set of migrations changes; the preview lists them (the step's triggers), and the
// schema version reached is an output. The folder is validated locally first by the same
// migrate.py (`check`), so a bad file name stops `pulumi preview` before anything changes.
// A rollback (stack config `release`) runs after the switch instead and brings the schema down to
// the version the pinned release ran with (the agent's migrate verb, from the server's history).
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { folderUpload, stageFolder, STAGING_ROOT } from "./upload";
import { Connection } from "./connection";
import { AGENT, agentResult, remoteStep, SCRIPTS_DIR, ScriptBundle, scriptParams } from "./remote-script";

export interface Migration {
  version: number;
  name: string;
  checksum: string;
}

/** The migrations in DIR, validated by migrate.py check; throws with its message when invalid. */
export function checkMigrations(dir: string): Migration[] {
  try {
    const out = execFileSync("python3", [path.join(SCRIPTS_DIR, "migrate.py"), "--dir", dir, "check"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    return JSON.parse(out).migrations as Migration[];
  } catch (e: any) {
    const msg = (e.stderr || e.message || String(e)).trim();
    // a RunError: Pulumi prints the message without a stack trace
    throw new pulumi.RunError(`flask-deploy:migrationsDir: ${msg}`);
  }
}

/**
 * checkMigrations, remembered in the app's staging folder (.fdeploy-staging/<key>/) by what the
 * check reads: migrate.py itself and the folder's *.sql entries (names, kinds, contents). An
 * unchanged folder then costs no python3 start on every preview and up; only a valid folder is
 * remembered, so an invalid one is checked (and refused) every time.
 */
export function checkMigrationsCached(dir: string, stack: string = pulumi.getStack(), root: string = STAGING_ROOT): Migration[] {
  let file: string;
  try {
    const h = crypto.createHash("sha256").update(fs.readFileSync(path.join(SCRIPTS_DIR, "migrate.py")));
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".sql")).sort()) {
      const st = fs.statSync(path.join(dir, name));   // follows symlinks, as migrate.py's is_file() does
      h.update(`\0${name}\0${st.isFile() ? "file" : "other"}\0`);
      if (st.isFile()) h.update(fs.readFileSync(path.join(dir, name)));
    }
    file = path.join(root, stack, `migrations-check-${h.digest("hex").slice(0, 16)}.json`);
  } catch {
    return checkMigrations(dir);   // a missing folder, a broken link…: migrate.py says what is wrong
  }
  try {
    const cached = JSON.parse(fs.readFileSync(file, "utf8"));
    if (Array.isArray(cached)) {
      const now = new Date();
      fs.utimesSync(file, now, now);   // in use: not pruned with the stale staged folders
      return cached as Migration[];
    }
  } catch {
    // not checked yet (or unreadable): check now
  }
  const migrations = checkMigrations(dir);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(migrations));
    fs.renameSync(tmp, file);
  } catch {
    // a read-only project folder: checked every time, as before
  }
  return migrations;
}

/** The KEEP_BACKUPS_BYTES parameter, only when set (unset: the step's inputs stay as they were). */
export function budget(keepBackupsBytes: number | undefined): { KEEP_BACKUPS_BYTES?: number } {
  return keepBackupsBytes === undefined ? {} : { KEEP_BACKUPS_BYTES: keepBackupsBytes };
}

/** BEFORE_CHANGE, only for backup.beforeChange replica (copy, the default: the step's inputs stay as they were). */
export function beforeChange(mode: "copy" | "replica" | undefined): { BEFORE_CHANGE?: string } {
  return mode === "replica" ? { BEFORE_CHANGE: mode } : {};
}

export interface MigrationRunnerArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  migrationsDir: string;
  /** The folder's migrations, as checkMigrations() returned them. */
  migrations: Migration[];
  keepBackups: number;
  /** The kept backups' disk budget in bytes (flask-deploy:keepBackupsBytes); unset: the server's default. */
  keepBackupsBytes?: number;
  /** backup.beforeChange: replica makes the replica's restore point the undo when it can (replica_undo.py). */
  beforeChange?: "copy" | "replica";
  /** A rollback: bring the schema down to the version this kept release ran with, nothing uploaded. */
  downToSchemaOf?: string;
  /** The app's staging folder (stagingKey); default: the stack's. */
  staging?: string;
  /** The PostgreSQL DATABASE_URL (flask-deploy:database); another one re-runs the step (a new database gets its
   * schema, fdeploy db migrate-to-postgres its copy). Unset (SQLite): the step's triggers are as they were. */
  databaseUrl?: string;
  after: pulumi.Resource[];
}

/** The step's trigger for DATABASE_URL: a digest, kept secret in the state (the URL holds the password). */
function databaseTrigger(url: string | undefined): pulumi.Output<string>[] {
  return url ? [pulumi.secret(`database ${crypto.createHash("sha256").update(url).digest("hex").slice(0, 16)}`)] : [];
}

export class MigrationRunner extends pulumi.ComponentResource {
  public readonly migrations: Migration[];
  /** The schema version the database has after this deploy. */
  public readonly schemaVersion: pulumi.Output<number>;
  public readonly step: command.remote.Command;

  constructor(name: string, args: MigrationRunnerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:MigrationRunner", name, {}, opts);
    this.migrations = args.migrations;
    if (args.downToSchemaOf) {
      this.step = remoteStep(`${name}-apply`, {
        connection: args.connection,
        bundle: args.bundle,
        script: AGENT,
        verb: "migrate",
        params: scriptParams({ APP: args.appName, DOWN_TO_SCHEMA_OF: args.downToSchemaOf, KEEP_BACKUPS: args.keepBackups, ...budget(args.keepBackupsBytes), ...beforeChange(args.beforeChange) }),
        triggers: [`down to the schema of release ${args.downToSchemaOf}`],
        after: args.after,
      }, this);
    } else {
      const files = stageFolder(args.migrationsDir, "migrations", args.staging);
      const folder = `migrations-${files.hash}`;
      const upload = folderUpload(`${name}-upload`, {
        connection: args.connection, staged: files, remotePath: `.fdeploy/${args.appName}/${folder}`,
      }, { parent: this, dependsOn: args.after });
      this.step = remoteStep(`${name}-apply`, {
        connection: args.connection,
        bundle: args.bundle,
        script: AGENT,
        verb: "migrate",
        params: scriptParams({ APP: args.appName, MIGRATIONS: folder, KEEP_BACKUPS: args.keepBackups, ...budget(args.keepBackupsBytes), ...beforeChange(args.beforeChange) }),
        // one readable entry per migration: a new or changed one shows up in `pulumi preview`
        triggers: [...this.migrations.map((m) => `${String(m.version).padStart(4, "0")}_${m.name} ${m.checksum.slice(0, 12)}`),
          ...databaseTrigger(args.databaseUrl)],
        after: [upload, ...args.after],
      }, this);
    }
    // the agent's result; a step last run by an older bundle printed `schema_version=N`
    this.schemaVersion = pulumi.all([agentResult(this.step.stdout), this.step.stdout]).apply(([r, out]) =>
      Number((r as { schema_version?: number }).schema_version ?? /schema_version=(\d+)\s*$/.exec(out ?? "")?.[1] ?? 0));
    this.registerOutputs({ schemaVersion: this.schemaVersion });
  }
}
