// The app's side of `database` (config/database.ts): DATABASE_URL for its environment file and, for a
// PostgreSQL the stack manages, the app's role and database on that server (components/database-server.ts),
// which the environment waits for. A program may pass one DatabaseServer to several FlaskApps
// (FlaskAppArgs.databaseServer); else each app makes its own for its `database.host`.
import * as pulumi from "@pulumi/pulumi";
import { databaseSettings, databaseUrl, DeployConfig, pgBackupApplies } from "./config";
import { Connection } from "./connection";
import { DatabaseServer } from "./database-server";
import { DatabaseState } from "./database-state";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";
import { PgBackup } from "./pg-backup";

export interface DatabaseEnv {
  /** { DATABASE_URL } with `database` set, else {} (SQLite: the environment stays as it was). */
  env: Record<string, string>;
  /** What the app's environment waits for. */
  ready: pulumi.Resource[];
  /** A remote managed server: pins its certificate on one app server (pg-pin; a fleet: on each host). */
  pinOn?: (name: string, connection: Connection, bundle: ScriptBundle, after: pulumi.Resource[]) => pulumi.Resource;
}

export interface DatabaseEnvArgs {
  /** The app's own server's connection and scripts (database.host "app"; a fleet's shared database: none). */
  connection?: Connection;
  bundle?: ScriptBundle;
  staging: string;
  after: pulumi.Resource[];
  /** A DatabaseServer the program shares between apps. */
  server?: DatabaseServer;
  /** The addresses the app connects from (a fleet: every app server's); default: the app's server. */
  allow?: string[];
}

export function databaseEnv(name: string, cfg: DeployConfig, args: DatabaseEnvArgs, parent: pulumi.Resource): DatabaseEnv {
  const s = databaseSettings(cfg);
  if (!s) return { env: {}, ready: [] };
  const env = { DATABASE_URL: databaseUrl(s) };
  if (s.kind === "url") return { env, ready: [] };
  const server = args.server ?? new DatabaseServer(`${name}-server`, s.server
    ? { server: s.server, limits: cfg.timeouts, bundleName: cfg.appName, staging: args.staging }
    : { server: cfg.server, limits: cfg.timeouts, connection: args.connection, bundle: args.bundle, after: args.after }, { parent });
  if (args.server && args.server.host !== (s.server ?? cfg.server).host) {
    throw new pulumi.RunError(`flask-deploy:database.host: ${s.server?.host ?? "app"} differs from the DatabaseServer passed to this app (${args.server.host})`);
  }
  // `backup` (pgBackRest): a brand-new database server restores from the repository before the app's database is made
  const backup = pgBackupApplies(cfg) ? new PgBackup(`${name}-pgbackup`, {
    connection: server.connection, bundle: server.bundle, appName: cfg.appName, backup: cfg.backup!,
    secrets: pulumi.secret(cfg.backupSecrets ?? {}), after: [server.ready, ...args.after],
  }, { parent }) : undefined;
  const step = server.appDatabase(`${name}-app`, {
    appName: cfg.appName, db: s.name, role: s.user, password: s.password,
    allow: s.colocated ? [] : args.allow ?? [cfg.server.host], local: s.colocated, after: [...args.after, ...(backup ? [backup.step] : [])],
  }, parent);
  // from another host: the server's certificate pinned on the app server (pg-pin), the CA file DATABASE_URL names
  const pinOn = s.pin ? (pinName: string, connection: Connection, bundle: ScriptBundle, after: pulumi.Resource[]) => remoteStep(pinName, {
    connection, bundle, script: AGENT, verb: "pg-pin",
    params: scriptParams({ APP: cfg.appName, CERT: server.certificate }), after: [...after, server.ready],
  }, parent) : undefined;
  const pin = pinOn && args.connection && args.bundle ? pinOn(`${name}-pin`, args.connection, args.bundle, args.after) : undefined;
  // what the database server runs (refresh: drift), read once the app's database is there
  const { host, port, user, hostKey, privateKeyPath } = s.server ?? cfg.server;
  new DatabaseState(`${name}-state`, {
    server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) }, appName: cfg.appName, scriptsDir: server.scriptsDir,
  }, { parent, dependsOn: [step] });
  return { env, ready: pin ? [step, pin] : [step], pinOn };
}

