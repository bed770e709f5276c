// A PostgreSQL server the stack manages (flask-deploy:database, engine postgres): Debian's postgresql,
// installed when missing, TLS with its own self-signed certificate, pg_hba for the app servers only
// (the agent's pg-install: fdeploy_agent/pg_server.py). Each app gets its own role and database
// (appDatabase(): pg-app), so one server serves several FlaskApps, none able to reach another's data.
// Destroy keeps the server, its roles and databases (like the SQLite database: README "Destroy and purge").
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ServerConfig, StepLimits, timeoutsSchema } from "./config";
import { Connection, connectionFor } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface DatabaseServerArgs {
  /** The server PostgreSQL runs on. */
  server: ServerConfig;
  /** Its steps' time limits (config `timeouts`; default: the defaults). */
  limits?: StepLimits;
  /** With the app's own server ("host: app"): its connection and script bundle, else made here. */
  connection?: Connection;
  bundle?: ScriptBundle;
  /** A name for the script folder on the server (~/.fdeploy/<bundleName>/); default postgres. */
  bundleName?: string;
  staging?: string;
  after?: pulumi.Resource[];
}

export interface AppDatabaseArgs {
  appName: string;
  /** The database and its owner role. */
  db: string;
  role: string;
  password: pulumi.Input<string>;
  /** The addresses the app connects from (hostssl), and whether it runs on this server (127.0.0.1). */
  allow: string[];
  local: boolean;
  after?: pulumi.Resource[];
}

export class DatabaseServer extends pulumi.ComponentResource {
  public readonly host: string;
  /** The server is installed and configured (pg-install). */
  public readonly ready: command.remote.Command;
  /** The SHA-256 fingerprint of the server's TLS certificate (after the first up). */
  public readonly fingerprint: pulumi.Output<string>;
  /** The server's certificate (PEM, public): what the apps connecting from another host pin. */
  public readonly certificate: pulumi.Output<string>;
  /** The agent's folder on the server (its bundle's remoteDir). */
  public readonly scriptsDir: string;
  /** Its connection and script bundle (its other steps: PgBackup). */
  public readonly connection: Connection;
  public readonly bundle: ScriptBundle;

  constructor(name: string, args: DatabaseServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:DatabaseServer", name, {}, opts);
    this.host = args.server.host;
    this.connection = args.connection ?? connectionFor(args.server);
    this.bundle = args.bundle ?? new ScriptBundle(`${name}-scripts`, {
      connection: this.connection, appName: args.bundleName ?? "postgres", sudo: args.server.user !== "root", limits: args.limits ?? timeoutsSchema.parse({}),
      staging: args.staging, after: args.after, stepPrefix: `${name}-`,
    }, { parent: this });
    this.scriptsDir = this.bundle.remoteDir;
    this.ready = remoteStep(`${name}-install`, {
      connection: this.connection, bundle: this.bundle, script: AGENT, verb: "pg-install", limit: "build",
      params: scriptParams({ NAME: args.server.host }), after: args.after,
    }, this);
    const result = (key: string) => this.ready.stdout.apply((s) => {
      try { return String(JSON.parse((s ?? "").trim().split("\n").pop() ?? "")[key] ?? ""); } catch { return ""; }
    });
    this.fingerprint = result("fingerprint");
    this.certificate = result("certificate");
    this.registerOutputs({ host: this.host });
  }

  /** The role and database of one app (pg-app), owned by PARENT (the FlaskApp's child name NAME). */
  appDatabase(name: string, args: AppDatabaseArgs, parent: pulumi.Resource): command.remote.Command {
    return remoteStep(name, {
      connection: this.connection, bundle: this.bundle, script: AGENT, verb: "pg-app",
      params: scriptParams({
        APP: args.appName, DB: args.db, ROLE: args.role, PASSWORD: pulumi.secret(args.password),
        ALLOW: args.allow.join(" "), LOCAL: args.local,
      }),
      after: [this.ready, ...(args.after ?? [])],
    }, parent);
  }
}
