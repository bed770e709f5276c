// Activation: the one switch point of a deploy (the agent's `activate` verb: fdeploy_agent/switch.py). Makes the release live with
// the stack's strategy, health-checks it on its own socket, and keeps the previous release serving
// if the check fails. Re-runs when the release, the unit or the .env changes.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { CanaryConfig, Strategy } from "./config";
import { Connection } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface ActivationArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  releaseId: string;
  /** Gunicorn's module:callable: the release must load it before a live slot restarts. */
  appModule: string;
  strategy: Strategy;
  /** strategy canary: its steps and gates (inputs of the step, so `pulumi preview --diff` shows them). */
  canary?: CanaryConfig;
  healthPath: string;
  healthTimeoutSeconds: number;
  keepReleases: number;
  /** The release is pinned by a rollback (recorded as one; its schema comes down afterwards). */
  rollback: boolean;
  /** A fleet's later host under a rollback: the pinned release may have come from the first host (release-peer.ts),
   * whose history vouches for it. */
  fleetPeer?: boolean;
  /** Revisions of what the running service reads; a change restarts it. */
  serviceRevision: pulumi.Input<string>;
  envRevision: pulumi.Input<string>;
  /** Revision of rendered shared files (only when there are any: other stacks keep their inputs). */
  sharedRevision?: pulumi.Input<string>;
  /** runtime docker: the release image's id (a rebuilt image restarts the slot); python stacks keep their inputs. */
  docker?: { imageId: pulumi.Input<string> };
  after: pulumi.Resource[];
}

export interface HistoryEntry {
  time: string;
  releaseId: string;
  status: "live" | "failed";
  schemaVersion: string;
}

/** The history in the activation's result (its one JSON line on stdout: the agent's activate,
 * the newest 10 entries of the server's history.jsonl, newest last); [] at preview. */
export function parseHistory(stdout: string): HistoryEntry[] {
  const line = stdout.trim().split("\n").pop() ?? "";
  let result: { history?: unknown };
  try { result = JSON.parse(line); } catch { return []; }
  if (!Array.isArray(result?.history)) return [];
  return result.history.filter((e): e is HistoryEntry =>
    typeof e?.time === "string" && /^[0-9a-f]{12}$/.test(e?.releaseId) && (e?.status === "live" || e?.status === "failed") &&
    typeof e?.schemaVersion === "string")
    .map((e) => ({ time: e.time, releaseId: e.releaseId, status: e.status, schemaVersion: e.schemaVersion }));
}

/** The canary's settings as the switch's CANARY_* parameters. */
export function canaryParams(c: CanaryConfig): Record<string, string | number> {
  return {
    CANARY_STEPS: c.steps.join(","),
    CANARY_STEP_SECONDS: c.stepSeconds,
    CANARY_MAX_ERROR_RATE: String(c.maxErrorRate),
    CANARY_MAX_P95_MS: c.maxP95Ms,
    CANARY_MIN_REQUESTS: c.minRequests,
    CANARY_LOW_TRAFFIC: c.lowTraffic,
    CANARY_MAX_WAIT_SECONDS: c.maxWaitSeconds,
  };
}

/** One line that says what a canary deploy will do (printed at preview); FLEET: across hosts, at the balancer. */
export function describeCanary(c: CanaryConfig, fleet = false): string {
  return `strategy canary: ${c.steps.map((p) => `${p} %`).join(" → ")} of requests to the new release${fleet ? " (the first host's share at the balancer)" : ""}, ${c.stepSeconds} s per step; ` +
    `each step needs ≥ ${c.minRequests} requests on it (else ${c.lowTraffic}${c.lowTraffic === "wait" ? ` up to ${c.maxWaitSeconds} s more, then fail` : ""}), ` +
    `a 5xx share ≤ ${c.maxErrorRate} and p95 ≤ ${c.maxP95Ms} ms, or all traffic goes back to the live release`;
}

/** The most the switch may wait by its settings: per slot up to the health timeout (twice: a
 * switch back), per canary step its time and its wait for traffic. Its time limit comes on top. */
export function switchWaits(args: { healthTimeoutSeconds: number; canary?: CanaryConfig }): number {
  const c = args.canary;
  return 3 * args.healthTimeoutSeconds + (c ? c.steps.length * (c.stepSeconds + (c.lowTraffic === "wait" ? c.maxWaitSeconds : 0)) : 0);
}

/** The `activate` verb's parameters (the fleet switch sends each host's the same way). */
export function activationParams(args: Omit<ActivationArgs, "connection" | "bundle" | "after">): pulumi.Output<string> {
  return scriptParams({
    APP: args.appName,
    RELEASE_ID: args.releaseId,
    APP_MODULE: args.appModule,
    STRATEGY: args.strategy,
    ...(args.canary ? canaryParams(args.canary) : {}),
    HEALTH_PATH: args.healthPath,
    HEALTH_TIMEOUT: args.healthTimeoutSeconds,
    KEEP_RELEASES: args.keepReleases,
    ...(args.rollback ? { ROLLBACK: 1 } : {}),
    ...(args.rollback && args.fleetPeer ? { FLEET_PEER: 1 } : {}),
    SERVICE_REVISION: args.serviceRevision,
    ENV_REVISION: args.envRevision,
    ...(args.sharedRevision !== undefined ? { SHARED_REVISION: args.sharedRevision } : {}),
    ...(args.docker ? { RUNTIME: "docker", IMAGE_ID: args.docker.imageId } : {}),
  });
}

export class Activation extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;
  /** The server's release history after this activation (newest last). */
  public readonly history: pulumi.Output<HistoryEntry[]>;

  constructor(name: string, args: ActivationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Activation", name, {}, opts);
    this.step = remoteStep(`${name}-switch`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "activate",
      extraSeconds: switchWaits(args),
      params: activationParams(args),
      after: args.after,
    }, this);
    this.history = this.step.stdout.apply((s) => parseHistory(s ?? ""));
    this.registerOutputs({ history: this.history });
  }
}
