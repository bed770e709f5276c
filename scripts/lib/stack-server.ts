// The server of a stack, for the project's commands that act on it outside `pulumi up` (rollback,
// purge): its validated config (read with `pulumi config`, like the program) and one way to run a
// bundled script there (components/pinned-ssh.ts), parameters as JSON on stdin.
import { execFileSync } from "child_process";
import * as path from "path";
import { DeployConfig, parseConfig } from "../../components/config";
import { pinnedSsh } from "../../components/pinned-ssh";

export const PROJECT_DIR = path.resolve(__dirname, "../..");

/** The value after --NAME on the command line. */
export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/**
 * `pulumi ARGS --stack STACK` (with --config-file for a stack whose config lives elsewhere: tests);
 * its stdout, or with `inherit` its output on this terminal and "". Throws when it fails.
 */
export function pulumi(args: string[], stack: string, opts: { input?: string; inherit?: boolean } = {}): string {
  const configFile = arg("config-file");
  const extra = configFile && ["config", "up", "preview"].includes(args[0]) ? ["--config-file", configFile] : [];
  const out = execFileSync("pulumi", [...args, "--stack", stack, ...extra, "--non-interactive"],
    { encoding: "utf8", input: opts.input ?? "", stdio: ["pipe", opts.inherit ? "inherit" : "pipe", "inherit"] });
  return out ?? "";
}

/** The stack's config, validated like the program does. */
export function stackConfig(stack: string): DeployConfig {
  const rawValues: Record<string, string> = {};
  const json = JSON.parse(pulumi(["config", "--json", "--show-secrets"], stack));
  for (const [k, v] of Object.entries<any>(json)) rawValues[k] = typeof v.value === "string" ? v.value : JSON.stringify(v.objectValue ?? v.value);
  const secretKeys = Object.entries<any>(json).filter(([, v]) => v.secret).map(([k]) => k);
  const dotenv: Record<string, string> = {};
  require("dotenv").config({ path: path.join(PROJECT_DIR, ".env"), processEnv: dotenv, quiet: true });
  return parseConfig({ values: rawValues, secretKeys }, PROJECT_DIR, { ...dotenv, ...process.env });
}

/**
 * Run SCRIPT VERB of the newest script bundle the deploys uploaded (stack outputs are not kept
 * after a failed up) on the stack's server, as root (sudo -n for another SSH user), with PARAMS on
 * stdin. Its messages go to this terminal; its stdout too, unless `capture` (then returned).
 */
export function runOnServer(cfg: DeployConfig, script: string, verb: string, params: Record<string, string>,
  opts: { capture?: boolean } = {}): { status: number; stdout: string } {
  // only fixed words here: the app name is validated by the config schema
  const run = `bash "$(ls -td .fdeploy/${cfg.appName}/scripts-*/ | head -n1)${script}" ${verb}`;
  const r = pinnedSsh(cfg.server, run, { input: JSON.stringify(params), inherit: !opts.capture });
  if (opts.capture && r.stderr) process.stderr.write(r.stderr);
  return { status: r.status ?? 1, stdout: r.stdout ?? "" };
}
