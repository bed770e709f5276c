// Checks across keys and against the project's files, once the schema accepted each key (parse.ts
// runs them); and what validated TLS settings mean.
import * as fs from "fs";
import * as path from "path";
import { DeployConfig, dockerSchema, ipv4, LETS_ENCRYPT, LETS_ENCRYPT_STAGING, NAMESPACE, NO_MIGRATIONS, parseReplicaUrl } from "./schema";
import { defaultMigrationsDir, LEGACY_MIGRATIONS_DIR } from "./defaults";
import { checkCustomCertificate } from "./x509";

/** Environment names the deploy sets itself; user env/secrets must not override them. */
const RESERVED_ENV = ["DATABASE_PATH", "RELEASE_ID"];

/** The app directory must hold what Gunicorn and pip need. */
export function checkFiles(cfg: DeployConfig, projectDir: string): string[] {
  const problems: string[] = [];
  const appDir = path.resolve(projectDir, cfg.appDir);
  if (!fs.existsSync(appDir) || !fs.statSync(appDir).isDirectory()) {
    return [`${NAMESPACE}:appDir: '${cfg.appDir}' is not a directory (expected the Flask app's folder, relative to the project)`];
  }
  if (!fs.existsSync(path.join(appDir, "requirements.txt"))) {
    problems.push(`${NAMESPACE}:appDir: '${cfg.appDir}' has no requirements.txt (expected one listing gunicorn and the app's packages)`);
  }
  const moduleFile = cfg.appModule.split(":")[0].trim().replace(/\./g, "/");
  if (!fs.existsSync(path.join(appDir, `${moduleFile}.py`)) && !fs.existsSync(path.join(appDir, moduleFile, "__init__.py"))) {
    problems.push(`${NAMESPACE}:appModule: '${cfg.appModule}' not found: expected ${cfg.appDir}/${moduleFile}.py`);
  }
  const isDir = (p: string) => fs.existsSync(p) && fs.statSync(p).isDirectory();
  if (cfg.migrationsDir === NO_MIGRATIONS) cfg.migrationsDir = undefined;
  else if (cfg.migrationsDir === undefined) {
    cfg.migrationsDir = defaultMigrationsDir(projectDir, cfg.appDir);
    // before this default, unset meant the project's own migrations/ for any appDir (index.ts keeps
    // that for a stack whose earlier ups applied it: components/migrations-default.ts)
    const legacy = isDir(path.resolve(projectDir, LEGACY_MIGRATIONS_DIR)) ? LEGACY_MIGRATIONS_DIR : undefined;
    if (legacy !== cfg.migrationsDir) cfg.legacyMigrationsDir = legacy ?? NO_MIGRATIONS;
  } else if (!isDir(path.resolve(projectDir, cfg.migrationsDir))) {
    problems.push(`${NAMESPACE}:migrationsDir: '${cfg.migrationsDir}' is not a directory (an empty folder is fine; '${NO_MIGRATIONS}' for no SQL migrations)`);
  }
  if (cfg.server.privateKeyPath && !fs.existsSync(expandHome(cfg.server.privateKeyPath))) {
    problems.push(`${NAMESPACE}:server.privateKeyPath: '${cfg.server.privateKeyPath}' does not exist (expected an SSH private key file)`);
  }
  return problems;
}

/** docker.* only with runtime docker (where it is filled with its defaults). */
export function checkDocker(cfg: DeployConfig): string[] {
  if (cfg.runtime !== "docker") {
    return cfg.docker ? [`${NAMESPACE}:docker: set, but runtime is ${cfg.runtime}; docker.* settings need runtime docker (pulumi config set runtime docker), or remove them`] : [];
  }
  cfg.docker = cfg.docker ?? dockerSchema.parse({});
  const problems: string[] = [];
  if (cfg.sharedFiles.length) {
    problems.push(`${NAMESPACE}:sharedFiles: not supported with runtime docker yet (the image holds appDir as it is); use env/secrets, sharedDirs, or runtime python`);
  }
  if (cfg.strategy === "canary") {
    problems.push(`${NAMESPACE}:strategy: canary is not supported with runtime docker yet; expected one of: restart, rolling, blue-green (or runtime python)`);
  }
  if (Object.keys(cfg.jobs).length) {
    problems.push(`${NAMESPACE}:jobs: not supported with runtime docker yet (a job runs in the live release's venv on the server); remove the jobs or use runtime python`);
  }
  return problems;
}

/** The credentials the replica's kind needs, and none that it would ignore. */
export function checkBackup(cfg: DeployConfig): string[] {
  const problems: string[] = [];
  const s = cfg.backupSecrets ?? {};
  if (!cfg.backup) {
    if (cfg.backupSecrets) problems.push(`${NAMESPACE}:backupSecrets: set, but backup.replica is not (remove them, or set backup.replica)`);
    return problems;
  }
  const t = parseReplicaUrl(cfg.backup.replica)!;
  const set = (k: string) => `pulumi config set --secret --path 'backupSecrets.${k}' < FILE`;
  if (t.type === "sftp") {
    if (!s.sftpKey) problems.push(`${NAMESPACE}:backupSecrets.sftpKey: required for an sftp:// replica (the SSH private key of ${t.user}@${t.host}): ${set("sftpKey")}`);
    if (s.accessKeyId || s.secretAccessKey) problems.push(`${NAMESPACE}:backupSecrets: accessKeyId/secretAccessKey are for an s3:// replica`);
  } else {
    if (!s.accessKeyId || !s.secretAccessKey) problems.push(`${NAMESPACE}:backupSecrets: accessKeyId and secretAccessKey are required for an s3:// replica: ${set("accessKeyId")}`);
    if (s.sftpKey) problems.push(`${NAMESPACE}:backupSecrets.sftpKey: is for an sftp:// replica`);
  }
  return problems;
}

/** canary.*: only with strategy canary; steps increase and end at 100. */
export function checkCanary(cfg: DeployConfig): string[] {
  const c = cfg.canary;
  if (!c) return [];
  if (cfg.strategy !== "canary") {
    return [`${NAMESPACE}:canary: set, but strategy is ${cfg.strategy}; canary settings apply only with strategy canary (set strategy canary, or remove them)`];
  }
  const problems: string[] = [];
  if (c.steps.some((p, i) => i > 0 && p <= c.steps[i - 1]) || c.steps[c.steps.length - 1] !== 100) {
    problems.push(`${NAMESPACE}:canary.steps: expected increasing percentages ending at 100, e.g. [5, 25, 50, 100] (got [${c.steps.join(", ")}])`);
  }
  return problems;
}

export function checkEnvNames(cfg: DeployConfig): string[] {
  const problems: string[] = [];
  for (const k of [...Object.keys(cfg.env), ...Object.keys(cfg.secrets)]) {
    if (RESERVED_ENV.includes(k)) problems.push(`${NAMESPACE}:env.${k}: is set by the deploy itself; choose another name`);
  }
  for (const k of Object.keys(cfg.env)) {
    if (k in cfg.secrets) problems.push(`${NAMESPACE}:env.${k}: also set in secrets; keep it in one place`);
  }
  return problems;
}

/** TLS on: the site's names must be names a public CA can validate over HTTP-01. */
export function checkTls(cfg: DeployConfig, projectDir: string): string[] {
  const t = cfg.tls;
  if (!t || t.mode === "off") return [];
  const problems: string[] = [];
  const names = cfg.serverName.split(" ");
  if (t.mode === "custom") return checkCustomCertificate(cfg, names);
  if (cfg.serverName === "_") {
    problems.push(`${NAMESPACE}:serverName: tls.mode ${t.mode} needs the site's DNS names (validated over HTTP on port 80); '_' names none: set e.g. 'example.com www.example.com'`);
  } else {
    for (const n of names) {
      if (n.startsWith("*.")) {
        problems.push(`${NAMESPACE}:serverName: '${n}' is a wildcard; HTTP-01 cannot validate wildcards: list each name, e.g. 'www.example.com'`);
      } else if (ipv4.test(n) || /^[\d.]+$/.test(n)) {
        problems.push(`${NAMESPACE}:serverName: '${n}' is an IP address; tls.mode ${t.mode} needs DNS names (e.g. app.example.com) that resolve to the server`);
      } else if (!n.includes(".")) {
        problems.push(`${NAMESPACE}:serverName: '${n}' is not a fully qualified DNS name; tls.mode ${t.mode} needs names like app.example.com`);
      }
    }
  }
  if (t.staging && t.acmeServer) {
    problems.push(`${NAMESPACE}:tls.staging: true selects Let's Encrypt's staging directory, but tls.acmeServer is set too; keep one of them`);
  }
  if (t.caBundle !== undefined) {
    const p = path.resolve(projectDir, expandHome(t.caBundle));
    let text = "";
    try { text = fs.readFileSync(p, "utf8"); } catch { /* reported below */ }
    if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(text)) {
      problems.push(`${NAMESPACE}:tls.caBundle: '${t.caBundle}' ${text ? "holds no PEM certificate" : "is not a readable file"} (expected a PEM file of the ACME CA's certificates)`);
    } else if (/PRIVATE KEY-----/.test(text)) {
      problems.push(`${NAMESPACE}:tls.caBundle: '${t.caBundle}' contains a private key; expected only CA certificates`);
    }
  }
  return problems;
}

/** What TLS does for a validated config: off, or the ACME directory, names and CA bundle path. */
export function tlsSettings(cfg: DeployConfig): { mode: "off" } | {
  mode: "acme"; names: string[]; acmeServer: string; email?: string; caBundlePath?: string; hstsMaxAgeSeconds: number;
} | { mode: "custom"; certificate: string; privateKey: string; hstsMaxAgeSeconds: number } {
  const t = cfg.tls;
  if (!t || t.mode === "off") return { mode: "off" };
  if (t.mode === "custom") {
    return { mode: "custom", certificate: t.certificate!.trim(), privateKey: t.privateKey!.trim(), hstsMaxAgeSeconds: t.hstsMaxAgeSeconds };
  }
  return {
    mode: "acme",
    names: cfg.serverName.split(" "),
    acmeServer: t.acmeServer ?? (t.staging ? LETS_ENCRYPT_STAGING : LETS_ENCRYPT),
    ...(t.email ? { email: t.email } : {}),
    ...(t.caBundle ? { caBundlePath: t.caBundle } : {}),
    hstsMaxAgeSeconds: t.hstsMaxAgeSeconds,
  };
}

export function expandHome(p: string): string {
  return p.startsWith("~/") ? path.join(process.env.HOME ?? "", p.slice(2)) : p;
}
