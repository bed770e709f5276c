// Scale out (README "Scale out"): `servers` (the app tier: each like `server`), `loadBalancer` (a server
// the stack manages, or "external": the user's own) and `rollout` (how many hosts switch at once). The
// keys' schemas take the server schema as an argument (schema.ts holds it and spreads these in), and
// checkFleet() refuses what a fleet cannot do (yet), naming the key and the way out.
import { z } from "zod";
import { NAMESPACE } from "./schema";
import type { DeployConfig, ServerConfig } from "./schema";

export function fleetKeys<S extends z.ZodTypeAny>(server: S) {
  return {
    /** The app servers (one release on all); unset: `server`, as before. */
    servers: z.array(server, { message: "expected a list of servers, each like server: { host, hostKey, port?, user?, privateKeyPath? }" })
      .min(1, "expected at least one server").max(32, "expected at most 32 servers").optional(),
    /** HAProxy on a server the stack manages, or "external" (the user's own balancer). */
    loadBalancer: z.union([z.literal("external"), server], {
      message: "expected a server like server ({ host, hostKey, … }) for HAProxy, or \"external\" (your own balancer)",
    }).optional(),
    rollout: z.strictObject({
      /** Hosts drained and switched together. */
      batchSize: z.coerce.number().int().min(1, "expected a whole number from 1").max(32).default(1),
      /** How long a drain waits for a host's in-flight requests. */
      drainSeconds: z.coerce.number().int().min(0).max(600).default(30),
    }).prefault({}),
  };
}

export type FleetConfig = { servers?: ServerConfig[]; loadBalancer?: "external" | ServerConfig; rollout: { batchSize: number; drainSeconds: number } };

/** The app servers of CFG: `servers`, or the one `server`. */
export function appServers(cfg: Pick<DeployConfig, "server"> & Partial<FleetConfig>): ServerConfig[] {
  return cfg.servers ?? [cfg.server];
}

/** Whether CFG keeps its data in SQLite on the app server: no `database` (PostgreSQL, README) and no
 * DATABASE_URL secret of its own. */
function usesSqlite(cfg: DeployConfig): boolean {
  return (cfg as { database?: unknown }).database === undefined && cfg.secrets.DATABASE_URL === undefined;
}

/** What a stack with more than one app server cannot do (yet); INPUT: the raw keys (sharedDirs as set). */
export function checkFleet(cfg: DeployConfig, input: Record<string, unknown>): string[] {
  const servers = cfg.servers ?? [];
  const problems: string[] = [];
  const hosts = servers.map((s) => `${s.host}:${s.port}`);
  const dup = hosts.find((h, i) => hosts.indexOf(h) !== i);
  if (dup) problems.push(`${NAMESPACE}:servers: ${dup} is listed twice (expected each app server once)`);
  if (servers.length <= 1) {
    if (cfg.loadBalancer !== undefined && servers.length === 0) problems.push(`${NAMESPACE}:loadBalancer: only with servers (a list of app servers behind it)`);
    return problems;
  }
  const n = servers.length;
  if (usesSqlite(cfg)) {
    problems.push(`${NAMESPACE}:servers: ${n} app servers need the database off them: set flask-deploy:database (README "PostgreSQL") or use one server\n` +
      `    (with SQLite each server would write its own database file, and users would see different data on each)`);
  }
  if ((cfg as { database?: { host?: unknown } }).database?.host === "app") {
    problems.push(`${NAMESPACE}:database.host: app with ${n} servers: expected a database server of its own ({ host, hostKey, … }) or database.url\n` +
      `    (each server would run its own PostgreSQL, with its own data)`);
  }
  if (cfg.loadBalancer === undefined) {
    problems.push(`${NAMESPACE}:loadBalancer: required with ${n} servers: a server for HAProxy ({ host, hostKey, … }, like server) or "external" (README "Scale out")`);
  } else if (cfg.loadBalancer !== "external" && servers.some((s) => s.host === (cfg.loadBalancer as ServerConfig).host)) {
    problems.push(`${NAMESPACE}:loadBalancer: ${cfg.loadBalancer.host} is also an app server; both serve port 80: expected a server of its own`);
  }
  const no = (key: string, why: string) => problems.push(`${NAMESPACE}:${key}: not supported with ${n} servers yet: ${why} (README "Scale out")`);
  if (Array.isArray(input.sharedDirs) && input.sharedDirs.length > 0) {
    no("sharedDirs", "files one host writes are not on the others; keep uploads in object storage (S3) or the database");
  }
  if (cfg.backup !== undefined) no("backup", "Litestream replicates SQLite; PostgreSQL has its own backups");
  // canary across hosts: HAProxy's weights (fleet_canary.py); an external balancer's are not ours to set
  if (cfg.strategy === "canary" && cfg.loadBalancer === "external") no("strategy", "canary sets the weights of the balancer the stack manages: loadBalancer.host");
  // HTTPS ends at the balancer (balancer-tls.ts): your own certificate, or ACME's, on the stack's balancer only
  if (cfg.tls !== undefined && cfg.tls.mode !== "off" && cfg.loadBalancer === "external") {
    no("tls.mode", "with loadBalancer external, HTTPS is your balancer's: tls.mode off");
  }
  if (cfg.rollout.batchSize >= n) {
    problems.push(`${NAMESPACE}:rollout.batchSize: ${cfg.rollout.batchSize} would drain all ${n} servers at once (nothing left serving); expected at most ${n - 1}`);
  }
  return problems;
}
