// CONTRACT (issue #31; "pg" owns it, the migration runner and the fleet build on it):
//   flask-deploy:database =
//     { engine: "postgres", host: <server: same shape as `server` (host, port, user, hostKey, privateKeyPath)> | "app",
//       name?: <database, default appName>, user?: <role, default appName> }
//   | { url: "postgresql://user[:pass]@host[:port]/name[?…]" }   (the user's own PostgreSQL; `database` must be a secret)
//   flask-deploy:databasePassword: the role's password, a stack secret (engine postgres: required; url: when the
//   url holds none).
// Unset: SQLite exactly as before. Set: the app's root-only env file gets DATABASE_URL (databaseUrl() below):
//   postgresql://user:pass@host:5432/name, with ?sslmode=verify-full&sslrootcert=<pinPath(app)> when the database
//   server is another host (its certificate pinned: components/database.ts), ("app": 127.0.0.1, no TLS). The migration step finds the URL in the release's env file.
import { z } from "zod";
// schema.ts imports this module: its names are read lazily here (z.lazy, in functions), never at load
import { NAMESPACE, serverSchema } from "./schema";

/** PostgreSQL identifiers the stack creates (role, database): lower-case, unquoted-safe. */
const pgIdent = (what: string) =>
  z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, `${what}: expected a PostgreSQL name: 1-63 chars of a-z, 0-9, '_', starting with a letter or '_', e.g. flaskapp`)
    .refine((n) => !n.startsWith("pg_") && !["postgres", "template0", "template1", "public"].includes(n), {
      message: `${what}: names one of PostgreSQL's own (postgres, template0/1, public, pg_*); choose another, e.g. flaskapp`,
    });

/** The PostgreSQL port of a managed server (Debian's default cluster). */
export const PG_PORT = 5432;

const managedSchema = z.strictObject({
  engine: z.literal("postgres", { message: "expected postgres (the only engine the stack manages)" }),
  host: z.unknown().transform((v, ctx): "app" | ServerShape => {
    if (v === "app") return v;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const r = serverSchema.safeParse(v);
      if (r.success) return r.data;
      for (const issue of r.error.issues) ctx.addIssue(issue as any);
      return z.NEVER;
    }
    ctx.addIssue({ code: "custom", message: "expected \"app\" (PostgreSQL on the app's own server) or a server like `server`: {host, hostKey, port?, user?, privateKeyPath?}" });
    return z.NEVER;
  }),
  name: pgIdent("database.name").optional(),
  user: pgIdent("database.user").optional(),
});

const urlSchema = z.strictObject({
  url: z.string().refine((u) => parsePgUrl(u) !== undefined, {
    message: "expected a PostgreSQL URL: postgresql://user[:password]@host[:port]/dbname[?sslmode=require]",
  }),
});

const FORMS = "expected {engine: postgres, host: \"app\" | {host, hostKey, …}, name?, user?} or {url: postgresql://…} (a secret)";
// the form is chosen by its keys (url: the user's own), so an error names the bad key, not "no form matched"
export const databaseSchema = z.unknown().transform((v, ctx): z.infer<typeof managedSchema> | z.infer<typeof urlSchema> => {
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    ctx.addIssue({ code: "custom", message: FORMS });
    return z.NEVER;
  }
  const r = ("url" in v ? urlSchema : managedSchema).safeParse(v);
  if (!r.success) {
    for (const issue of r.error.issues) ctx.addIssue(issue as any);
    return z.NEVER;
  }
  return r.data;
});
/** The role's password: 16-200 printable ASCII characters (SCRAM's SASLprep leaves them as they are;
 * percent-encoded into DATABASE_URL). */
export const databasePasswordSchema = z.string()
  .regex(/^[\x21-\x7e]{16,200}$/, "expected a password of 16-200 printable ASCII characters without spaces, e.g. openssl rand -hex 24");

/** The keys of a managed `database` (an unknown key's message lists them). */
export const DATABASE_KEYS = ["engine", "host", "name", "user", "url"];

export type DatabaseConfig = z.output<typeof databaseSchema>;
type ServerShape = z.infer<typeof serverSchema>;
export type ManagedDatabase = z.infer<typeof managedSchema>;

interface PgUrl { user: string; password?: string; host: string; port: number; name: string; query: string }

/** A postgresql:// (or postgres://) URL's parts, or undefined when it is not one with a user, host and database. */
export function parsePgUrl(u: string): PgUrl | undefined {
  let url: URL;
  try { url = new URL(u); } catch { return undefined; }
  if (!["postgresql:", "postgres:"].includes(url.protocol) || !url.username || !url.hostname) return undefined;
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!name || name.includes("/") || /[\r\n\0]/.test(u)) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return {
    user: decodeURIComponent(url.username), password: url.password ? decodeURIComponent(url.password) : undefined,
    host, port: url.port ? Number(url.port) : PG_PORT, name, query: url.search,
  };
}

/** What a validated `database` means for one app: where PostgreSQL runs (managed) and the URL the app gets. */
export type DatabaseSettings =
  | { kind: "managed"; server?: ServerShape; colocated: boolean; address: string; port: number; name: string; user: string; password: string;
      /** The CA file on the app server pinning the database server's certificate (another host only). */
      pin?: string }
  | { kind: "url"; url: string };

/** The settings of CFG's database (undefined: SQLite). Call after checkDatabase() found no problem. */
export function databaseSettings(cfg: { database?: DatabaseConfig; databasePassword?: string; appName: string }): DatabaseSettings | undefined {
  const d = cfg.database;
  if (!d) return undefined;
  if ("url" in d) return { kind: "url", url: withPassword(d.url, cfg.databasePassword) };
  const colocated = d.host === "app";
  const server = d.host === "app" ? undefined : d.host;
  const name = d.name ?? dbIdent(cfg.appName);
  return {
    kind: "managed", server, colocated, address: server ? server.host : "127.0.0.1", port: PG_PORT,
    name, user: d.user ?? dbIdent(cfg.appName), password: cfg.databasePassword!, ...(server ? { pin: pinPath(cfg.appName) } : {}),
  };
}

/** appName as a PostgreSQL name ('-' is not allowed unquoted). */
export function dbIdent(appName: string): string {
  return appName.replace(/-/g, "_");
}

/** The CA file pinning APP's managed database server's certificate (the agent's pg_pin.pin_path: the same). */
export function pinPath(appName: string): string {
  return `/etc/fdeploy/${appName}.pg-root.crt`;
}

/** The CA file APP's DATABASE_URL names when the stack pins its database server's certificate (runtime docker
 * mounts it into the containers: the unit step gets it, so pinning starting or stopping re-stages the unit). */
export function pinnedCaFile(cfg: { database?: DatabaseConfig; databasePassword?: string; appName: string }): string | undefined {
  const s = databaseSettings(cfg);
  return s?.kind === "managed" ? s.pin : undefined;
}

/** The DATABASE_URL the app gets (holds the password: a secret). A server of its own: only the server holding
 * the pinned certificate's key, under the name the app connects to (verify-full); a `url` keeps its own sslmode. */
export function databaseUrl(s: DatabaseSettings): string {
  if (s.kind === "url") return s.url;
  const q = s.pin ? `?sslmode=verify-full&sslrootcert=${s.pin}` : "";
  return `postgresql://${encodeURIComponent(s.user)}:${encodeURIComponent(s.password)}@${s.address}:${s.port}/${encodeURIComponent(s.name)}${q}`;
}

/** URL with PASSWORD in it when it holds none. */
function withPassword(url: string, password: string | undefined): string {
  const u = new URL(url);
  if (!u.password && password) u.password = encodeURIComponent(password);
  return u.toString();
}

/** Checks across keys: the password's presence, secrecy of what holds it, the app name as a default name. */
export function checkDatabase(cfg: { database?: DatabaseConfig; databasePassword?: string; appName: string; runtime: string; env: Record<string, string>; secrets: Record<string, string> },
  secretKeys: string[]): string[] {
  const problems: string[] = [];
  const k = (key: string) => `${NAMESPACE}:${key}`;
  const secret = (key: string) => secretKeys.includes(k(key));
  if (cfg.databasePassword !== undefined && !secret("databasePassword")) {
    problems.push(`${k("databasePassword")}: must be set as a secret: pulumi config set --secret databasePassword VALUE`);
  }
  const d = cfg.database;
  if (!d) {
    if (cfg.databasePassword !== undefined) problems.push(`${k("databasePassword")}: set, but database is not (set database, or remove it)`);
    return problems;
  }
  if ("DATABASE_URL" in cfg.env || "DATABASE_URL" in cfg.secrets) {
    problems.push(`${NAMESPACE}:env.DATABASE_URL: is set by the deploy itself when database is set; remove it`);
  }
  if ("url" in d) {
    const u = parsePgUrl(d.url)!;
    if (!secret("database")) problems.push(`${k("database")}: a url holds credentials and must be set as a secret: pulumi config set --secret --path database.url 'postgresql://…'`);
    if (!u.password && cfg.databasePassword === undefined) {
      problems.push(`${k("databasePassword")}: required: database.url holds no password (pulumi config set --secret databasePassword VALUE)`);
    }
    if (u.password && cfg.databasePassword !== undefined) problems.push(`${k("databasePassword")}: database.url holds a password already; keep it in one place`);
    return problems;
  }
  if (d.host === "app" && cfg.runtime === "docker") {
    problems.push(`${NAMESPACE}:database.host: "app" is not supported with runtime docker yet (a container's 127.0.0.1 is its own); use a database server of its own`);
  }
  if (cfg.databasePassword === undefined) {
    problems.push(`${k("databasePassword")}: required with database.engine postgres: the role's password (pulumi config set --secret databasePassword "$(openssl rand -hex 24)")`);
  }
  for (const key of ["name", "user"] as const) {
    const derived = dbIdent(cfg.appName);
    if (d[key] === undefined && !pgIdent("").safeParse(derived).success) {
      problems.push(`${k(`database.${key}`)}: the default (appName as ${derived}) is not a usable PostgreSQL name; set database.${key}, e.g. app_${derived}`);
    }
  }
  return problems;
}

/** What `fdeploy status` reads of the app's database (FdeployRecord.database): where a managed one runs; no secret. */
export type DatabaseRecord = { engine: "postgres"; server: Pick<ServerShape, "host" | "port" | "user" | "hostKey" | "privateKeyPath">; name: string } | { engine: "postgres"; url: true };

export function databaseRecord(cfg: { database?: DatabaseConfig; databasePassword?: string; appName: string; server: ServerShape }): { database?: DatabaseRecord } {
  const s = databaseSettings(cfg);
  if (!s) return {};
  if (s.kind === "url") return { database: { engine: "postgres", url: true } };
  const { host, port, user, hostKey, privateKeyPath } = s.server ?? cfg.server;
  return { database: { engine: "postgres", server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) }, name: s.name } };
}
