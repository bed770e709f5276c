// Remote steps run the shell scripts in components/scripts/ on the server. The scripts folder is
// uploaded once per content hash (ScriptBundle); each step is a @pulumi/command remote.Command whose
// command line names only the script and a verb, and whose parameters travel as JSON on stdin:
// values are data, never spliced into shell text. Secret parameters keep the whole stdin secret.
// Every step runs under the agent's supervisor (agent/fdeploy_agent/supervise.py) with a time limit
// (config `timeouts`); it also stops the step when its SSH session ends (the provider never cancels it).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { StepLimitName, StepLimits } from "./config";
import { Connection } from "./connection";
import { folderUpload, stageFolder } from "./upload";
import { SCRIPTS_DIR } from "./scripts-dir";

export { SCRIPTS_DIR };
/** The server agent's folder in the bundle: `remoteStep({script: AGENT, verb: "env-stage", …})`. */
export const AGENT = "agent";

/** The result object an agent verb prints (one JSON line on stdout); the fields are the verb's. */
export interface AgentResult { ok?: boolean; error?: string; changed?: boolean; revision?: string }
export function agentResult(stdout: pulumi.Output<string>): pulumi.Output<AgentResult> {
  return stdout.apply((s): AgentResult => {
    const line = (s ?? "").trim().split("\n").pop() ?? "";
    try { return JSON.parse(line) as AgentResult; } catch { return {}; }   // preview: no output yet
  });
}

export interface ScriptBundleArgs {
  connection: Connection;
  appName: string;
  /** Prefix every command with `sudo -n` (an SSH user other than root). */
  sudo: boolean;
  /** The steps' time limits (config `timeouts`), in seconds. */
  limits: StepLimits;
  /** What must exist first (every remote step waits for the upload). */
  after?: pulumi.Resource[];
  /** The app's staging folder (stagingKey); default: the stack's. */
  staging?: string;
  /** Left off the step names in command lines (the FlaskApp's `<name>-`): a step's command stays as before. */
  stepPrefix?: string;
}

/** The remote scripts, uploaded to ~/.fdeploy/<app>/scripts-<hash>/ of the SSH user. */
export class ScriptBundle extends pulumi.ComponentResource {
  public readonly remoteDir: string;
  public readonly upload: command.remote.CopyToRemote;
  private readonly sudo: boolean;
  private readonly limits: StepLimits;
  private readonly stepPrefix: string;

  constructor(name: string, args: ScriptBundleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:ScriptBundle", name, {}, opts);
    const scripts = stageFolder(SCRIPTS_DIR, "scripts", args.staging);
    this.remoteDir = `.fdeploy/${args.appName}/scripts-${scripts.hash}`;
    this.sudo = args.sudo;
    this.limits = args.limits;
    this.stepPrefix = args.stepPrefix ?? "";
    this.upload = folderUpload(`${name}-upload`, { connection: args.connection, staged: scripts, remotePath: this.remoteDir }, { parent: this, dependsOn: args.after });
    this.registerOutputs({ remoteDir: this.remoteDir });
  }

  /** The command line of step STEP (its name in messages): SCRIPT with VERB (and fixed, validated
   * words such as the app name) under the agent's supervisor, which stops it after LIMIT's seconds
   * (plus EXTRA: waits the step's own settings configure) or when its SSH session ends.
   * SCRIPT `agent` is the server agent (components/scripts/agent: Python, one JSON result on stdout). */
  stepLine(step: string, limit: StepLimitName, extraSeconds: number, script: string, verb: string, ...words: string[]): string {
    if (this.stepPrefix && step.startsWith(this.stepPrefix)) step = step.slice(this.stepPrefix.length);
    const seconds = this.limits[limit] + Math.max(0, Math.ceil(extraSeconds));
    const agent = `python3 -I -B ${this.remoteDir}/${AGENT}`;
    const program = script === AGENT ? agent : `bash ${this.remoteDir}/${script}`;
    // the agent takes its one word (a delete step's app) as --app APP
    const tail = safeWords(script, verb, ...words).slice(1);
    if (script === AGENT && words.length > 0) tail.splice(1, words.length, ...words.flatMap((w) => ["--app", w]));
    const run = [agent, "supervise", String(seconds), ...safeWords(step, `timeouts.${limit}`), "--lock-wait", String(this.limits.lockWait), "--", program, ...tail].join(" ");
    return this.sudo ? `sudo -n ${run}` : run;
  }
}

function safeWords(...words: string[]): string[] {
  for (const w of words) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(w)) throw new Error(`unsafe word in a remote command line: ${w}`);
  }
  return words;
}

/**
 * Parameters for a remote script: one JSON object (stdin). Secret inputs make the result secret.
 * DEPLOY names the deploy ("<project>/<stack>"): its steps hold the server's deploy lease
 * (agent lease.py), so another stack's steps never run between two of them.
 */
export function scriptParams(values: Record<string, pulumi.Input<string | number | boolean>>): pulumi.Output<string> {
  const all = { DEPLOY: `${pulumi.getProject()}/${pulumi.getStack()}`, ...values };
  return pulumi.all(all).apply((v) => JSON.stringify(v, Object.keys(v).sort(), 1));
}

export interface RemoteStepArgs {
  connection: Connection;
  bundle: ScriptBundle;
  script: string;
  /** The script's verb on create and update (default: create). */
  verb?: string;
  params: pulumi.Input<string>;
  /** Run `<script> delete <appName>` when the resource is deleted (the agent: `<deleteVerb> --app <appName>`). */
  deleteWith?: string;
  /** The agent verb a delete runs (default: delete). */
  deleteVerb?: string;
  /** The script whose `delete` runs then, when not `script` (an agent step whose delete is still bash). */
  deleteScript?: string;
  /** A change here replaces the step (shown as a replacement in preview) instead of updating it. */
  triggers?: pulumi.Input<any[]>;
  /** Steps that must finish first (the script upload is always one). */
  after?: pulumi.Resource[];
  /** Which time limit applies (config `timeouts.<limit>`; default: `default`), plus EXTRA seconds. */
  limit?: StepLimitName;
  extraSeconds?: number;
  /** The step's name in its command line, when the resource's name is another (default: the resource's). */
  label?: string;
}

/** One remote.Command that runs a bundled script; its parent is the component that owns it. */
export function remoteStep(name: string, args: RemoteStepArgs, parent: pulumi.Resource, aliases?: pulumi.Alias[]): command.remote.Command {
  const label = args.label ?? name;
  return new command.remote.Command(name, {
    connection: args.connection,
    create: args.bundle.stepLine(label, args.limit ?? "default", args.extraSeconds ?? 0, args.script, args.verb ?? "create"),
    delete: args.deleteWith ? args.bundle.stepLine(label, "default", 0, args.deleteScript ?? args.script, args.deleteVerb ?? "delete", args.deleteWith) : undefined,
    stdin: args.params,
    triggers: args.triggers,
    addPreviousOutputInEnv: false,
  }, { parent, dependsOn: [...(args.after ?? []), args.bundle.upload], ...(aliases ? { aliases } : {}) });
}
