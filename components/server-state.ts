// What the server really runs, as a Pulumi resource, so that drift is visible and repaired with
// Pulumi's own refresh: a dynamic resource whose `read` asks the server (the agent's state-read:
// the live release, whether it runs, whether the unit, environment file and nginx site in force are
// the deployed ones) and whose `update` repairs what differs (state-fix).
//   pulumi preview --refresh / pulumi refresh   show drift (a stopped app, a hand-edited site…): one
//                                                line "server drift on <app>@<host>: …" without --diff
//   pulumi up --refresh                          repairs it
// A plain `up` never reads the server: with nothing changed it runs no remote command.
import * as pulumi from "@pulumi/pulumi";
import { scriptReport, SshTarget } from "./pinned-ssh";

export interface ServerStateArgs {
  /** How to reach the server (no secret: a key path, not a key). */
  server: SshTarget;
  appName: string;
  /** The remote scripts folder (ScriptBundle.remoteDir). */
  scriptsDir: pulumi.Input<string>;
  /** The release the stack deploys. */
  release: pulumi.Input<string>;
}

/**
 * The state the stack wants: the release running, and the deployed settings, site and links in
 * force. An input of its own (`wanted`), apart from the observed outputs: a preview of a first
 * deploy shows those as unknown, never as already true.
 */
const WANTED = { running: true, unitInForce: true, envInForce: true, siteInForce: true, sharedFilesInForce: true };
const OBSERVED = ["release", "running", "unitInForce", "envInForce", "siteInForce", "sharedFilesInForce"] as const;
/** What the stack wants for observed field K (`release` is the release input itself). */
const wantedOf = (news: any, k: (typeof OBSERVED)[number]) => (k === "release" ? news.release : (news.wanted ?? {})[k]);

/**
 * The one line that says what drifted (the CLI shows a dynamic resource's changed keys only with
 * --diff): written to stderr, which the engine shows as the stack's diagnostic. The engine asks for a
 * diff twice in one process (refresh, then the plan): said once. A new release to deploy is not
 * drift: `release` drifted when the server's live one is not the one it last switched to.
 */
function sayDrift(id: string, olds: any, news: any): void {
  const drifted = OBSERVED.filter((k) =>
    k === "release" ? (olds.deployedRelease || news.release) !== olds.release : olds[k] !== wantedOf(news, k));
  if (drifted.length === 0) return;
  const shown = drifted.map((k) =>
    k.endsWith("InForce") ? `${k} (${olds[k]})` : `${k} (${JSON.stringify(olds[k] ?? null)}, want ${JSON.stringify(k === "release" ? olds.deployedRelease || news.release : wantedOf(news, k))})`);
  const line = `server drift on ${id}: ${shown.join(", ")} — pulumi up --refresh repairs it`;
  const said: Set<string> = ((globalThis as any).fdeployDriftSaid ??= new Set<string>());
  if (!said.has(line)) console.error(line);
  said.add(line);
}

/** The agent's VERB on the server (fdeploy_agent/server_state.py): its JSON report. */
function stateScript(inputs: any, verb: "state-read" | "state-fix"): Record<string, unknown> {
  return scriptReport(inputs.server, inputs.scriptsDir, "agent", verb, inputs.appName);
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: any) {
    return { id: `${inputs.appName}@${inputs.server.host}`, outs: { ...inputs, ...stateScript(inputs, "state-read") } };
  },
  async read(id: string, props: any) {
    // refresh: what the server runs now (the inputs stay as deployed)
    return { id, props: { ...props, ...stateScript(props, "state-read") } };
  },
  async diff(id: string, olds: any, news: any) {
    sayDrift(id, olds, news);
    // what differs between the server (after a refresh) and what the stack wants; where and how
    // to look changing means looking again
    const changed: string[] = OBSERVED.filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(wantedOf(news, k)));
    for (const k of ["scriptsDir", "appName", "server"]) if (JSON.stringify(olds[k]) !== JSON.stringify(news[k])) changed.push(k);
    return { changes: changed.length > 0, diffs: changed };
  },
  async update(_id: string, _olds: any, news: any) {
    return { outs: { ...news, ...stateScript(news, "state-fix") } };
  },
};

/** The app's live state on its server (see the top of this file). */
export class ServerState extends pulumi.dynamic.Resource {
  declare public readonly release: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<boolean>;

  constructor(name: string, args: ServerStateArgs, opts?: pulumi.CustomResourceOptions) {
    // the observed fields: outputs only (undefined here), read from the server
    const observed = Object.fromEntries(OBSERVED.filter((k) => k !== "release").map((k) => [k, undefined]));
    super(provider, name, { ...args, wanted: WANTED, ...observed }, opts);
  }
}
