// The app of a stack, for fdeploy's commands (everything outside `pulumi up`): the FlaskApp the stack's
// state holds (cli/lib/apps.ts; read with `pulumi stack export`, the user's own login and secrets
// provider, in the user's project folder), or for a stack no FlaskApp deployed yet its validated
// `flask-deploy:*` config; and one way to run a bundled script on its server (components/pinned-ssh.ts),
// parameters as JSON on stdin. SSH and Pulumi failures become FdeployErrors that say what to do.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { DeployConfig, localEnv, NAMESPACE, parseConfig } from "../../components/config";
import type { FdeployRecord } from "../../components/flask-app";
import { beforeChangeRecord } from "../../components/config/before-change";
import { databaseRecord } from "../../components/config/database";
import { pinnedSsh, SshTarget } from "../../components/pinned-ssh";
import { appsInState, chooseApp } from "./apps";
import { FdeployError } from "./errors";

/** The user's Pulumi project: the nearest folder from the working directory up that holds Pulumi.yaml. */
export function projectDir(from: string = process.cwd()): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (["Pulumi.yaml", "Pulumi.yml"].some((f) => fs.existsSync(path.join(dir, f)))) return dir;
    if (path.dirname(dir) === dir) {
      throw new FdeployError(`no Pulumi project here: run fdeploy in your project's folder (where Pulumi.yaml is), not in ${from}`, 2);
    }
  }
}

/** Which app a command acts on: --stack (else Pulumi's selected stack), --config-file and --app; the project it is in. */
export interface StackRef {
  stack: string;
  configFile?: string;
  app?: string;
  dir: string;
}

export function stackRef(opts: { stack?: string; configFile?: string; app?: string }): StackRef {
  const dir = projectDir();
  let stack = opts.stack;
  if (!stack) {
    const r = spawnSync("pulumi", ["stack", "--show-name", "--non-interactive"], { cwd: dir, encoding: "utf8" });
    stack = r.status === 0 ? r.stdout.trim() : "";
    if (!stack) throw new FdeployError("no stack given and none selected: pass --stack <name> (pulumi stack ls lists them)", 2);
  }
  return { stack, dir, ...(opts.configFile ? { configFile: opts.configFile } : {}), ...(opts.app ? { app: opts.app } : {}) };
}

/** The app a command acts on, as fdeploy needs it (FdeployRecord, components/flask-app.ts) and its FlaskApp's name. */
export type AppTarget = FdeployRecord & { name: string; server: SshTarget };

/**
 * `pulumi ARGS --stack STACK` (with --config-file for a stack whose config lives elsewhere: tests);
 * its stdout, or with `inherit` its output on this terminal and "". Throws an FdeployError.
 */
export function pulumi(ref: StackRef, args: string[], opts: { input?: string; inherit?: boolean } = {}): string {
  const argv = pulumiArgv(ref, args);
  if (opts.inherit) {
    const r = spawnSync("pulumi", argv, { cwd: ref.dir, input: opts.input ?? "", stdio: ["pipe", "inherit", "inherit"] });
    if (r.status !== 0) throw new FdeployError(`pulumi ${args[0]} failed on stack ${ref.stack} (exit ${r.status}; see above)`);
    return "";
  }
  try {
    return execFileSync("pulumi", argv, { cwd: ref.dir, encoding: "utf8", input: opts.input ?? "", stdio: "pipe", maxBuffer: 1 << 30 });
  } catch (e: any) {
    throw pulumiError(ref, args, String(e.stderr ?? e.message));
  }
}

function pulumiArgv(ref: StackRef, args: string[]): string[] {
  const extra = ref.configFile && ["config", "up", "preview"].includes(args[0]) ? ["--config-file", ref.configFile] : [];
  return [...args, "--stack", ref.stack, ...extra, "--non-interactive"];
}

function pulumiError(ref: StackRef, args: string[], stderr: string): FdeployError {
  const err = stderr.trim();
  if (/no stack named|stack .* not found/i.test(err)) {
    return new FdeployError(`unknown stack '${ref.stack}' (pulumi stack ls lists this project's stacks; is this your pulumi login?)`, 2);
  }
  return new FdeployError(`pulumi ${args.slice(0, 2).join(" ")} failed on stack ${ref.stack}: ${err}`);
}

/** pulumi(), started now and awaited later: its stdout. */
export function pulumiAsync(ref: StackRef, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("pulumi", pulumiArgv(ref, args), { cwd: ref.dir, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", (e) => reject(pulumiError(ref, args, e.message)));
    child.on("close", (code) => code === 0 ? resolve(Buffer.concat(out).toString("utf8"))
      : reject(pulumiError(ref, args, Buffer.concat(err).toString("utf8") || `exit ${code}`)));
  });
}

const EXPORT_ARGS = ["stack", "export", "--show-secrets"];

/** The app of the stack a command acts on (appTarget() without waiting). */
export function appTarget(ref: StackRef): AppTarget {
  return targetOf(ref, pulumi(ref, EXPORT_ARGS), () => pulumi(ref, CONFIG_ARGS));
}

/** appTarget(), its `pulumi stack export` started now (beside other work: rollback). */
export async function appTargetAsync(ref: StackRef): Promise<AppTarget> {
  const exported = await pulumiAsync(ref, EXPORT_ARGS);
  return targetOf(ref, exported, () => pulumi(ref, CONFIG_ARGS));
}

/** The FlaskApp REF names in the state EXPORTED; a stack without one (deployed before FlaskApp, or not yet): its config. */
function targetOf(ref: StackRef, exported: string, config: () => string): AppTarget {
  const apps = appsInState(JSON.parse(exported));
  if (apps.length) {
    const app = chooseApp(apps, ref.app, ref.stack);
    return { ...app.record, name: app.name };
  }
  const cfg = configFromJson(ref, config());
  if (ref.app !== undefined && ref.app !== cfg.appName) throw new FdeployError(`--app ${ref.app}: stack ${ref.stack} holds no such app; its app: ${cfg.appName}`, 2);
  return {
    name: "app", appName: cfg.appName, server: cfg.server, releaseKey: `${NAMESPACE}:release`, ...(cfg.release ? { release: cfg.release } : {}),
    backup: cfg.backup !== undefined, ...beforeChangeRecord(cfg.backup), jobs: Object.keys(cfg.jobs), ...databaseRecord(cfg),
  };
}

const CONFIG_ARGS = ["config", "--json", "--show-secrets"];

function configFromJson(ref: StackRef, text: string): DeployConfig {
  const rawValues: Record<string, string> = {};
  const json = JSON.parse(text);
  for (const [k, v] of Object.entries<any>(json)) rawValues[k] = typeof v.value === "string" ? v.value : JSON.stringify(v.objectValue ?? v.value);
  const secretKeys = Object.entries<any>(json).filter(([, v]) => v.secret).map(([k]) => k);
  try {
    return parseConfig({ values: rawValues, secretKeys }, ref.dir, localEnv(ref.dir));
  } catch (e: any) {
    throw new FdeployError(`stack ${ref.stack} (Pulumi.${ref.stack}.yaml): ${e.message}`, 2);
  }
}

/**
 * The app and server as the stack's config FILE says them in plain values (no `pulumi config`: no CLI start), for
 * work that may start before `pulumi config` answers and is checked against it (rollback's plan, which changes
 * nothing). Undefined when the file does not settle them alone: missing, imports an ESC environment, or its plain
 * values do not validate (e.g. a setting only a secret value satisfies).
 */
export function connectionFromFile(ref: StackRef): Connection | undefined {
  try {
    const file = ref.configFile ?? path.join(ref.dir, `Pulumi.${ref.stack}.yaml`);
    const doc = require("js-yaml").load(fs.readFileSync(file, "utf8"));
    if (!doc || typeof doc !== "object" || doc.environment !== undefined || typeof doc.config !== "object") return undefined;
    const values: Record<string, string> = {};
    const secure = (v: unknown): boolean => !!v && typeof v === "object" && ("secure" in v || Object.values(v).some(secure));
    for (const [k, v] of Object.entries<any>(doc.config ?? {})) {
      if (!secure(v)) values[k] = typeof v === "string" ? v : JSON.stringify(v);
      else if (/^flask-deploy:(server|appName)$/.test(k)) return undefined; // the connection needs a secret
    }
    const cfg = parseConfig({ values, secretKeys: [] }, ref.dir, localEnv(ref.dir));
    return { appName: cfg.appName, server: cfg.server };
  } catch {
    return undefined;
  }
}

/** An app on its server, as runOnServer() reaches it. */
export type Connection = { appName: string; server: SshTarget };

/** Whether A and B name the same app on the same server, reached the same way. */
export function sameConnection(a: Connection, b: Connection): boolean {
  const key = (c: Connection) => JSON.stringify([c.appName, c.server.host, c.server.port, c.server.user, c.server.hostKey, c.server.privateKeyPath ?? null]);
  return key(a) === key(b);
}

export interface RunOpts {
  /** Return stdout instead of printing it (stderr still goes to this terminal). */
  capture?: boolean;
  /** A terminal for the remote side (console): all of stdin/stdout/stderr are this terminal's. */
  tty?: boolean;
  /** Sent on stdin after the parameters' line (exec --stdin). */
  stdin?: Buffer;
  /** Fixed words after the verb (only names the config schema validated). */
  args?: string[];
  /** With capture: return stderr too instead of printing it. */
  keepStderr?: boolean;
}

/**
 * Run SCRIPT VERB of the script bundle of the deploy that went live (~/.fdeploy/<app>/live-scripts) on the stack's server, as root (sudo -n for another SSH user), with PARAMS as
 * one JSON line on stdin. Exit 3: the app is not deployed there (no bundle, or the script says so).
 */
export function runOnServer(cfg: Connection, script: string, verb: string, params: Record<string, unknown>,
  opts: RunOpts = {}): { status: number; stdout: string; stderr: string } {
  // only fixed words here: the app name is validated by the config schema
  const app = cfg.appName;
  // the bundle of the deploy that went live (the agent's went-live step points live-scripts at it: live.py), whose scripts match the server's state;
  // only a server no deploy of this version switched yet has none: then the newest upload
  const run = `bash -c 'd=.fdeploy/${app}/live-scripts/; [ -d "$d" ] || d=$(ls -td .fdeploy/${app}/scripts-*/ 2>/dev/null | head -n1); ` +
    `[ -n "$d" ] || { echo "error: app ${app} is not deployed on this server (no scripts in ~/.fdeploy/${app})" >&2; exit 3; }; ` +
    `[ -e "\${d}${script}" ] || { echo "error: the scripts on this server predate ${script}: run pulumi up once to upload the current ones" >&2; exit 4; }; ` +
    // (an agent verb: one its version has; an older bundle's agent would only print its usage)
    (script === "agent" ? `grep -qF "\\"${verb}\\":" "\${d}agent/fdeploy_agent/cli.py" || { echo "error: the scripts on this server predate ${verb}: run pulumi up once to upload the current ones" >&2; exit 4; }; ` : "") +
    `exec ${script === "agent" ? "python3 -I -B" : "bash"} "\${d}${script}" "$@"' fdeploy ${[verb, ...(opts.args ?? [])].join(" ")}`;
  const input = Buffer.concat([Buffer.from(opts.tty ? "" : JSON.stringify(params) + "\n"), opts.stdin ?? Buffer.alloc(0)]);
  const r = pinnedSsh(cfg.server, run, { input, inherit: !opts.capture, tty: opts.tty });
  if (opts.capture && r.stderr && !opts.keepStderr) process.stderr.write(r.stderr);
  const status = r.status ?? 1;
  if (status === 255) throw sshError(cfg, opts.capture ? r.stderr : "");
  if (status === 3) throw new FdeployError(`no app '${app}' deployed on ${cfg.server.host} (pulumi up deploys it)`, 3);
  return { status, stdout: r.stdout ?? "", stderr: opts.keepStderr ? r.stderr ?? "" : "" };
}

/** Why ssh itself failed (exit 255): a changed host key, or an unreachable server. */
function sshError(cfg: Pick<Connection, "server">, stderr: string): FdeployError {
  const s = cfg.server;
  const where = `${s.user}@${s.host}:${s.port}`;
  if (!stderr) stderr = pinnedSsh(s, "true", { input: "", timeoutMs: 30000 }).stderr;   // streamed: ask again
  if (/host key verification failed|identification has changed|host key .* differs/i.test(stderr)) {
    return new FdeployError(`host key mismatch: ${where} does not present the stack's pinned server.hostKey (${s.hostKey.slice(0, 30)}…)\n` +
      `If the server was reinstalled, check its new key (ssh-keyscan -t ed25519 ${s.host}) ` +
      `and pulumi config set server.hostKey; otherwise do not connect.`, 5);
  }
  const why = stderr.trim().split("\n").filter(Boolean).pop() ?? "ssh failed";
  return new FdeployError(`cannot reach the server ${where} (server.host, server.port): ${why}`, 5);
}

/**
 * The JSON result of a server verb: its stdout's last line, without the agent's `ok` flag (the
 * agent's verbs print {"ok": true, …}). FIELD: that field of it, or the whole value when it is one
 * already (a script bundle from before the agent printed the value itself).
 */
export function serverResult(stdout: string, field?: string): any {
  const value = JSON.parse(stdout.trim().split("\n").pop()!);
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  if (field !== undefined) return value[field];
  const { ok: _ok, ...rest } = value;
  return rest;
}

/** The value of config KEY (a path, e.g. flask-deploy:apps.shop.release) of the stack; undefined when unset. */
export function configGet(ref: StackRef, key: string): string | undefined {
  const r = spawnSync("pulumi", pulumiArgv(ref, ["config", "get", "--path", key]), { cwd: ref.dir, encoding: "utf8" });
  if (r.status === 0) return r.stdout.trim() || undefined;
  if (/not found|no value/i.test(r.stderr ?? "")) return undefined;
  throw pulumiError(ref, ["config", "get"], r.stderr || r.error?.message || `exit ${r.status}`);
}
