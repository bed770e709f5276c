// Raw stack config (`ns:key` -> text, which keys are secret) into a validated DeployConfig: every
// problem named with its key and the expected form (a ConfigError), before any resource exists.
import * as path from "path";
import { resolveAppLayout } from "../app-layout";
import { configSchema, DeployConfig, hostKeyLine, knownKeys, NAMESPACE, parseReplicaUrl } from "./schema";
import { checkBeforeChange } from "./before-change";
import { checkPgBackup } from "./pg-backup";
import { checkBackup, checkCanary, checkDocker, checkEnvNames, checkFiles, checkTls } from "./checks";
import { defaultStrategy } from "./defaults";
import { serverFromDotenv } from "./dotenv";
import { ConfigError } from "./errors";
import { checkDatabase } from "./database";
import { checkFleet } from "./servers";

/**
 * A line as `ssh-keyscan -t ed25519 HOST` prints it (`HOST ssh-ed25519 AAAA…`; `[HOST]:PORT …` for another
 * port; `h1,h2 …` as in known_hosts): the host names it is for and the key. undefined: no host name first.
 */
export function splitKeyscanLine(line: string): { hosts: string[]; key: string } | undefined {
  const m = /^(\S+) ((?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) \S+.*)$/.exec(line.trim());
  if (!m || hostKeyLine.test(line.trim())) return undefined;
  return { hosts: m[1].split(",").map((h) => h.replace(/^\[(.*)\]:\d+$/, "$1")), key: m[2] };
}

/** KEY (server.hostKey or backup.hostKey, in INPUT) pasted as ssh-keyscan printed it: the host name is
 * dropped, and a key scanned from another host than HOST is a problem naming both. */
function acceptKeyscanLine(input: Record<string, any> | undefined, host: string | undefined, key: string, problems: string[]): void {
  const line = input?.hostKey;
  const scanned = typeof line === "string" ? splitKeyscanLine(line) : undefined;
  if (!scanned || !input) return;
  input.hostKey = scanned.key;
  if (host !== undefined && !scanned.hosts.includes(host)) {
    problems.push(`${NAMESPACE}:${key}: the key was scanned from ${scanned.hosts.join(", ")}, not from ${host} (its host); ` +
      `scan it (ssh-keyscan -t ed25519 ${host}) or fix the host`);
  }
}

/** Keys whose values must be set with `pulumi config set --secret`. */
const SECRET_KEYS = ["secrets", "backupSecrets"];

/** Raw stack config as the SDK hands it to the program: `ns:key` -> string, and which are secret. */
export interface RawConfig {
  values: Record<string, string>;
  secretKeys: string[];
  /** tls.privateKey sits in plaintext in the stack's config file (see plaintextSecretNames). */
  plaintextTlsKey?: boolean;
  /** Names under `secrets` that the stack's config file holds in plaintext (see plaintextSecretNames). */
  plaintextSecrets?: string[];
}

function parseValue(v: string): unknown {
  const t = v.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return v;
    }
  }
  return v;
}

/**
 * Validates raw config. `projectDir` is where relative paths resolve; `dotenv` supplies the server
 * when the stack config has none; `stack` picks defaults (prod* stacks: blue-green). Throws
 * ConfigError listing every problem.
 */
export function parseConfig(
  raw: RawConfig, projectDir: string, dotenv: Record<string, string | undefined> = {}, stack = "",
): DeployConfig {
  const input: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [fullKey, value] of Object.entries(raw.values)) {
    const [ns, key] = splitKey(fullKey);
    if (ns !== NAMESPACE) continue; // other packages' config (e.g. pulumi:tags)
    input[key] = parseValue(value);
  }
  for (const key of SECRET_KEYS) {
    if (input[key] !== undefined && !raw.secretKeys.includes(`${NAMESPACE}:${key}`)) {
      problems.push(`${NAMESPACE}:${key}: must be set as a secret: pulumi config set --secret --path '${key}.NAME' VALUE`);
    }
  }
  for (const name of raw.plaintextSecrets ?? []) {
    const key = name.includes(".") ? name : `secrets.${name}`; // backupSecrets.X arrive with their object's name
    problems.push(`${NAMESPACE}:${key}: stored in plaintext in the stack's config file; must be set as a secret: ` +
      `pulumi config set --secret --path '${key}' VALUE`);
  }
  const tlsIn = input.tls as Record<string, unknown> | undefined;
  if (tlsIn && typeof tlsIn === "object" && tlsIn.privateKey !== undefined &&
      (!raw.secretKeys.includes(`${NAMESPACE}:tls`) || raw.plaintextTlsKey)) {
    problems.push(`${NAMESPACE}:tls.privateKey: must be set as a secret: pulumi config set --secret --path tls.privateKey < key.pem`);
  }
  if (Array.isArray(input.servers)) {
    // scale out: the first of `servers` is the one every single-server step addresses (server keeps working alone)
    if (input.server !== undefined) problems.push(`${NAMESPACE}:servers: set either server (one server) or servers (a list), not both`);
    input.servers.forEach((s, i) => acceptKeyscanLine(s, s?.host, `servers[${i}].hostKey`, problems));
    input.server = input.servers[0];
  }
  if (input.loadBalancer && typeof input.loadBalancer === "object") {
    acceptKeyscanLine(input.loadBalancer as Record<string, any>, (input.loadBalancer as any).host, "loadBalancer.hostKey", problems);
  }
  if (input.server === undefined) input.server = serverFromDotenv(dotenv);
  acceptKeyscanLine(input.server as Record<string, any> | undefined, (input.server as any)?.host, "server.hostKey", problems);
  const replica = (input.backup as any)?.replica;
  const target = typeof replica === "string" ? parseReplicaUrl(replica) : undefined;
  acceptKeyscanLine(input.backup as Record<string, any> | undefined, target?.type === "sftp" ? target.host : undefined, "backup.hostKey", problems);
  if (input.server === undefined) {
    problems.push(`${NAMESPACE}:server: missing; set server.host, server.hostKey (and server.privateKeyPath) with pulumi config set --path, or FDEPLOY_SERVER_* in .env`);
  }

  problems.push(...checkBeforeChange(input.backup));
  const result = configSchema.safeParse(input);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === "unrecognized_keys") {
        for (const k of issue.keys) {
          const where = [...issue.path, k].join(".");
          problems.push(`${NAMESPACE}:${where}: unknown setting (a typo?); known: ${knownKeys(issue.path).join(", ")}`);
        }
      } else if (!(issue.path[0] === "server" && (input.server === undefined || Array.isArray(input.servers)))) {
        // a bad record key (env/secrets names) carries the key's own message inside
        const nested = (issue as { issues?: { message: string }[] }).issues?.[0]?.message;
        // commands in a message name this stack and app, not placeholders
        const said = (nested ?? issue.message).replace(/<stack>/g, stack || "<stack>")
          .replace(/<appName>/g, typeof input.appName === "string" ? input.appName : "flaskapp");
        problems.push(`${NAMESPACE}:${issue.path.join(".")}: ${said}`);
      }
    }
  }
  if (problems.length) throw new ConfigError(problems);
  const cfg = result.data! as DeployConfig;
  // unset strategy: zero-downtime blue-green for production stacks, a simple restart elsewhere
  if (input.strategy === undefined) cfg.strategy = defaultStrategy(stack);
  problems.push(...checkFiles(cfg, projectDir), ...checkEnvNames(cfg), ...checkTls(cfg, projectDir), ...checkBackup(cfg), ...checkPgBackup(cfg), ...checkCanary(cfg), ...checkDocker(cfg),
    ...checkDatabase(cfg, raw.secretKeys), ...checkFleet(cfg, input));
  if (!problems.length) problems.push(...resolveAppLayout(cfg as any, path.resolve(projectDir, cfg.appDir), (k) => `${NAMESPACE}:${k}`));
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}

function splitKey(fullKey: string): [string, string] {
  const i = fullKey.indexOf(":");
  const ns = fullKey.slice(0, i);
  let key = fullKey.slice(i + 1);
  if (key.startsWith("config:")) key = key.slice("config:".length);
  return [ns, key];
}
