// The server of a stack, for fdeploy's commands (everything outside `pulumi up`): the stack's
// validated config (read with `pulumi config`, like the program, with the user's own login and
// secrets provider) and one way to run a bundled script there (components/pinned-ssh.ts),
// parameters as JSON on stdin. SSH and Pulumi failures become FdeployErrors that say what to do.
import { execFileSync, spawnSync } from "child_process";
import * as path from "path";
import { DeployConfig, parseConfig } from "../../components/config";
import { pinnedSsh } from "../../components/pinned-ssh";
import { FdeployError } from "./errors";

export const PROJECT_DIR = path.resolve(__dirname, "../..");

/** Which stack a command acts on: --stack (else Pulumi's selected stack) and --config-file. */
export interface StackRef {
  stack: string;
  configFile?: string;
}

export function stackRef(opts: { stack?: string; configFile?: string }): StackRef {
  let stack = opts.stack;
  if (!stack) {
    const r = spawnSync("pulumi", ["stack", "--show-name", "--non-interactive"], { cwd: PROJECT_DIR, encoding: "utf8" });
    stack = r.status === 0 ? r.stdout.trim() : "";
    if (!stack) throw new FdeployError("no stack given and none selected: pass --stack <name> (pulumi stack ls lists them)", 2);
  }
  return { stack, configFile: opts.configFile };
}

/**
 * `pulumi ARGS --stack STACK` (with --config-file for a stack whose config lives elsewhere: tests);
 * its stdout, or with `inherit` its output on this terminal and "". Throws an FdeployError.
 */
export function pulumi(ref: StackRef, args: string[], opts: { input?: string; inherit?: boolean } = {}): string {
  const extra = ref.configFile && ["config", "up", "preview"].includes(args[0]) ? ["--config-file", ref.configFile] : [];
  const argv = [...args, "--stack", ref.stack, ...extra, "--non-interactive"];
  if (opts.inherit) {
    const r = spawnSync("pulumi", argv, { cwd: PROJECT_DIR, input: opts.input ?? "", stdio: ["pipe", "inherit", "inherit"] });
    if (r.status !== 0) throw new FdeployError(`pulumi ${args[0]} failed on stack ${ref.stack} (exit ${r.status}; see above)`);
    return "";
  }
  try {
    return execFileSync("pulumi", argv, { cwd: PROJECT_DIR, encoding: "utf8", input: opts.input ?? "", stdio: "pipe" });
  } catch (e: any) {
    const err = String(e.stderr ?? e.message).trim();
    if (/no stack named|stack .* not found/i.test(err)) {
      throw new FdeployError(`unknown stack '${ref.stack}' (pulumi stack ls lists this project's stacks; is this your pulumi login?)`, 2);
    }
    throw new FdeployError(`pulumi ${args.slice(0, 2).join(" ")} failed on stack ${ref.stack}: ${err}`);
  }
}

/** The stack's config, validated like the program does. */
export function stackConfig(ref: StackRef): DeployConfig {
  const rawValues: Record<string, string> = {};
  const json = JSON.parse(pulumi(ref, ["config", "--json", "--show-secrets"]));
  for (const [k, v] of Object.entries<any>(json)) rawValues[k] = typeof v.value === "string" ? v.value : JSON.stringify(v.objectValue ?? v.value);
  const secretKeys = Object.entries<any>(json).filter(([, v]) => v.secret).map(([k]) => k);
  const dotenv: Record<string, string> = {};
  require("dotenv").config({ path: path.join(PROJECT_DIR, ".env"), processEnv: dotenv, quiet: true });
  try {
    return parseConfig({ values: rawValues, secretKeys }, PROJECT_DIR, { ...dotenv, ...process.env });
  } catch (e: any) {
    throw new FdeployError(`stack ${ref.stack}: ${e.message}`, 2);
  }
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
}

/**
 * Run SCRIPT VERB of the newest script bundle the deploys uploaded (stack outputs are not kept
 * after a failed up) on the stack's server, as root (sudo -n for another SSH user), with PARAMS as
 * one JSON line on stdin. Exit 3: the app is not deployed there (no bundle, or the script says so).
 */
export function runOnServer(cfg: DeployConfig, script: string, verb: string, params: Record<string, unknown>,
  opts: RunOpts = {}): { status: number; stdout: string } {
  // only fixed words here: the app name is validated by the config schema
  const app = cfg.appName;
  const run = `bash -c 'd=$(ls -td .fdeploy/${app}/scripts-*/ 2>/dev/null | head -n1); ` +
    `[ -n "$d" ] || { echo "error: app ${app} is not deployed on this server (no scripts in ~/.fdeploy/${app})" >&2; exit 3; }; ` +
    `[ -f "\${d}${script}" ] || { echo "error: the scripts on this server predate ${script}: run pulumi up once to upload the current ones" >&2; exit 4; }; ` +
    `exec bash "\${d}${script}" "$@"' fdeploy ${[verb, ...(opts.args ?? [])].join(" ")}`;
  const input = Buffer.concat([Buffer.from(opts.tty ? "" : JSON.stringify(params) + "\n"), opts.stdin ?? Buffer.alloc(0)]);
  const r = pinnedSsh(cfg.server, run, { input, inherit: !opts.capture, tty: opts.tty });
  if (opts.capture && r.stderr) process.stderr.write(r.stderr);
  const status = r.status ?? 1;
  if (status === 255) throw sshError(cfg, opts.capture ? r.stderr : "");
  if (status === 3) throw new FdeployError(`no app '${app}' deployed on ${cfg.server.host} (pulumi up deploys it)`, 3);
  return { status, stdout: r.stdout ?? "" };
}

/** Why ssh itself failed (exit 255): a changed host key, or an unreachable server. */
function sshError(cfg: DeployConfig, stderr: string): FdeployError {
  const s = cfg.server;
  const where = `${s.user}@${s.host}:${s.port}`;
  if (!stderr) stderr = pinnedSsh(s, "true", { input: "", timeoutMs: 30000 }).stderr;   // streamed: ask again
  if (/host key verification failed|identification has changed|host key .* differs/i.test(stderr)) {
    return new FdeployError(`host key mismatch: ${where} does not present the stack's pinned server.hostKey ` +
      `(${s.hostKey.slice(0, 30)}…). If the server was reinstalled, check its new key (ssh-keyscan -t ed25519 ${s.host}) ` +
      `and pulumi config set server.hostKey; otherwise do not connect.`, 5);
  }
  const why = stderr.trim().split("\n").filter(Boolean).pop() ?? "ssh failed";
  return new FdeployError(`cannot reach the server ${where}: ${why}`, 5);
}
