// Runs the real Pulumi CLI for e2e tests, each stack isolated: its own file state backend, its own
// passphrase and its own stack config file, so tests never touch a user's stacks.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { tempDir } from "../tmpdir";

export const PROJECT_DIR = path.resolve(__dirname, "../..");

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
  output: string;
}

/**
 * The environment of a stack that must not touch anyone else's: its own file state backend in
 * STATEDIR, a random passphrase, and none of the developer's machine-local .env server settings.
 */
export function isolatedEnv(stateDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PULUMI_BACKEND_URL: `file://${stateDir}`,
    PULUMI_CONFIG_PASSPHRASE: crypto.randomBytes(16).toString("hex"),
    PULUMI_CONFIG_PASSPHRASE_FILE: "",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    FDEPLOY_SERVER_HOST: "",
  };
}

/** `pulumi ARGS` for stack NAME whose config lives in CONFIGFILE (not Pulumi.<stack>.yaml). */
export function stackArgv(name: string, configFile: string, args: string[]): string[] {
  const withConfig = ["config", "up", "preview", "destroy", "refresh"].includes(args[0]) ? ["--config-file", configFile] : [];
  const stack = args[0] === "stack" && args[1] === "init" ? [] : ["--stack", name];
  return [...args, ...stack, ...withConfig, "--non-interactive"];
}

/**
 * The resource names (last URN part; index.ts's FlaskApp "app" names its steps app-<step>: given as <step>) that
 * an `up` output reports as changed. An up that failed (or output of anything but a finished up) throws:
 * "nothing changed" must never pass on a failed run.
 */
export function changed(output: string): string[] {
  if (/^\s*error:|update failed|preview failed/m.test(output) || !/^Resources:\s*$/m.test(output)) {
    throw new Error(`not the output of a successful up:\n${output.split("\n").slice(-40).join("\n")}`);
  }
  const names = new Set<string>();
  for (const m of output.matchAll(/^\s*([+~-]|\+-|-\+)\s+command:remote:(?:Command|CopyToRemote)\s+(\S+)\s+(created|updated|replaced|deleted|creating replacement|created replacement)/gm)) {
    names.add(m[2].replace(/^app-/, ""));   // the steps of index.ts's FlaskApp "app", by step name
  }
  return [...names].sort();
}

/** "<type> <name> <op>" of each resource in the output of `pulumi preview --diff` whose operation matches OPS. */
export function planned(output: string, ops: RegExp): string[] {
  const steps = new Set<string>();
  for (const m of output.matchAll(/^\s*(?:\+-|-\+|--|[+~-])?\s*([\w-]+:[\w-]*:[\w-]+): \(([a-z][a-z-]*)\)\n(?:\s*\[id=[^\]\n]*\]\n)?\s*\[urn=[^\]\n]*::([^\]\n:]+)\]/gm)) {
    if (ops.test(m[2])) steps.add(`${m[1]} ${m[3]} ${m[2]}`);
  }
  return [...steps].sort();
}

export class TestStack {
  readonly dir: string;
  readonly configFile: string;
  readonly env: NodeJS.ProcessEnv;

  /** PROJECTDIR may change later (e.g. the previous main's tree, then this one: the upgrade e2e). */
  /** ENV: the environment every command of this stack runs with (default: isolatedEnv()). */
  constructor(readonly name: string, public projectDir: string = PROJECT_DIR, env?: NodeJS.ProcessEnv) {
    this.dir = tempDir(`fdeploy-e2e-${name}-`);
    fs.mkdirSync(path.join(this.dir, "state"));
    this.configFile = path.join(this.dir, `Pulumi.${name}.yaml`);
    this.env = env ?? isolatedEnv(path.join(this.dir, "state"));
    // `stack init` writes the new stack's passphrase salt to Pulumi.<name>.yaml in the project (stack
    // rm deletes it); one left by a run that was killed would not match this stack's passphrase
    if (["dev", "prod"].includes(name)) throw new Error(`test stacks never use the project's stack names (${name})`);
    fs.rmSync(path.join(projectDir, `Pulumi.${name}.yaml`), { force: true });
    const init = spawnSync("pulumi", stackArgv(name, this.configFile, ["stack", "init", name]), { cwd: projectDir, env: this.env, encoding: "utf8" });
    if (init.status !== 0) throw new Error(`pulumi stack init ${name} failed: ${init.stderr}`);
  }

  private argv(args: string[]): string[] {
    return stackArgv(this.name, this.configFile, args);
  }

  /** Like run(), without blocking the event loop (for watching the server while Pulumi runs); ON_OUTPUT: its stdout so far, as it grows. */
  runAsync(args: string[], onOutput?: (stdout: string) => void): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn("pulumi", this.argv(args), { cwd: this.projectDir, env: this.env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "", stderr = "";
      child.stdout.on("data", (d) => { stdout += d; onOutput?.(stdout); });
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr, output: stdout + stderr }));
    });
  }

  /** `pulumi up` in its own process group, as a terminal or a CI runner starts it (to kill it midway). */
  upDetached(): { child: ChildProcess; done: Promise<RunResult> } {
    const child = spawn("pulumi", this.argv(["up", "--yes", "--skip-preview"]), { cwd: this.projectDir, env: this.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    const done = new Promise<RunResult>((resolve) => child.on("close", (code) => resolve({ status: code ?? -1, stdout: output, stderr: "", output })));
    return { child, done };
  }

  run(args: string[], input?: string): RunResult {
    const r = spawnSync("pulumi", this.argv(args), {
      cwd: this.projectDir, env: this.env, encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024,
    });
    const stdout = r.stdout ?? "", stderr = r.stderr ?? "";
    return { status: r.status ?? -1, stdout, stderr, output: stdout + stderr };
  }

  mustRun(args: string[], input?: string): RunResult {
    const r = this.run(args, input);
    if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${r.output}`);
    return r;
  }

  /** Aim the stack at a test server (host, key, pinned host key) and set further plain keys. */
  target(server: { host: string; keyPath: string; hostKey: string }, settings: Record<string, string> = {}): void {
    const all: Record<string, string> = {
      "server.host": server.host, "server.privateKeyPath": server.keyPath, "server.hostKey": server.hostKey, ...settings,
    };
    this.setPlainConfigs(all);
  }

  /**
   * Plain (not secret) keys in one `pulumi config set-all --path` (one CLI start, ~0.2 s of CPU each on a
   * quiet machine, instead of one per key). The values go on its command line, so never a secret;
   * each is stored as `config set` stores it from stdin (which drops one trailing newline).
   */
  setPlainConfigs(values: Record<string, string>): void {
    const pairs = Object.entries(values).flatMap(([k, v]) => ["--plaintext", `${k}=${v.replace(/\n$/, "")}`]);
    if (pairs.length) this.mustRun(["config", "set-all", "--path", ...pairs]);
  }

  setConfig(key: string, value: string, opts: { secret?: boolean } = {}): void {
    // values go on stdin, so a secret never appears in a command line
    this.mustRun(["config", "set", "--path", key, ...(opts.secret ? ["--secret"] : [])], value);
  }

  up(): RunResult {
    return this.run(["up", "--yes", "--skip-preview"]);
  }

  preview(): RunResult {
    return this.run(["preview"]);
  }

  outputs(): Record<string, any> {
    return JSON.parse(this.mustRun(["stack", "output", "--json", "--show-secrets"]).stdout);
  }

  /** The stack's state file as stored by the backend. */
  stateText(): string {
    return this.mustRun(["stack", "export"]).stdout;
  }

  /** `npm run rollback` for this stack (ARGS: e.g. --to <id>, --forward). */
  rollback(...args: string[]): RunResult {
    return this.command("rollback.ts", args);
  }

  /** rollback(), without blocking the event loop (a load runs meanwhile). */
  rollbackAsync(...args: string[]): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, this.commandArgv("rollback.ts", args), { cwd: this.projectDir, env: this.env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "", stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr, output: stdout + stderr }));
    });
  }

  /** `npm run purge` for this stack. */
  purge(confirm: string): RunResult {
    return this.command("purge.ts", ["--confirm", confirm]);
  }

  /** `npm run backup -- VERB` for this stack (VERB: verify, restore, status; ARGS: e.g. --txid <id>). */
  backup(verb: string, ...args: string[]): RunResult {
    return this.command("backup.ts", args, [verb]);
  }

  /** One of the project's commands in scripts/ (rollback, purge, backup) for this stack; LEAD goes before the stack options (a verb). */
  private command(script: string, args: string[], lead: string[] = []): RunResult {
    const r = spawnSync(process.execPath, this.commandArgv(script, args, lead), { cwd: this.projectDir, env: this.env, encoding: "utf8" });
    const stdout = r.stdout ?? "", stderr = r.stderr ?? "";
    return { status: r.status ?? -1, stdout, stderr, output: stdout + stderr };
  }

  /**
   * As package.json's `npm run rollback|purge|backup` run them: node with scripts/ts-register.js (each file's
   * JavaScript from the transpile cache), not npx ts-node (an npx start, TypeScript loaded and every file
   * transpiled again: ~1.5 s more CPU a call).
   */
  private commandArgv(script: string, args: string[], lead: string[] = []): string[] {
    return ["-r", path.join(PROJECT_DIR, "scripts", "ts-register.js"), path.join(PROJECT_DIR, "scripts", script), ...lead,
      "--stack", this.name, "--config-file", this.configFile, ...args];
  }

  destroy(): RunResult {
    return this.run(["destroy", "--yes", "--skip-preview"]);
  }

  remove(): void {
    this.run(["stack", "rm", "--yes", "--force"]);
    // the salt file stack init wrote, also when stack rm failed (e.g. the stack still locked by a failed case's up)
    fs.rmSync(path.join(this.projectDir, `Pulumi.${this.name}.yaml`), { force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
