// A fleet's database (README "Scale out"): with `database.host` a server the stack manages, one role and
// database on it for the app, reached from every app server (pg_hba: each host's address), and one
// DATABASE_URL every host's environment gets. Without it each host made its own DatabaseServer and pg-app
// step for the same server, each allowing only its own address: the last one to run locked the others out.
// A `database.url` needs nothing of the stack (each host takes it as it is); `host: app` is refused with
// several servers (config/servers.ts).
import * as pulumi from "@pulumi/pulumi";
import { databaseSettings, ServerConfig } from "./config";
import { DatabaseEnv, databaseEnv } from "./database";
import { FlaskAppArgs } from "./flask-app";

/** The fleet's one database env, named as the first host's (`<name>-database`), or undefined: each host's own. */
export function fleetDatabase(name: string, cfg: FlaskAppArgs, servers: ServerConfig[], staging: string, parent: pulumi.Resource): DatabaseEnv | undefined {
  const s = databaseSettings(cfg);
  if (!s || s.kind === "url" || s.colocated) return undefined;
  return databaseEnv(`${name}-database`, { ...cfg, server: servers[0] }, {
    staging, after: [], server: cfg.databaseServer, allow: servers.map((h) => h.host),
  }, parent);
}
