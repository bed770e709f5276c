// FleetSwitch: the one switch of a FlaskApp on several servers (README "Scale out"). A local step of the
// stack runs the agent's `fleet-rollout` on the deploying machine (fdeploy_agent/fleet.py), holding every
// host's deploy lease (taken in sorted order, renewed) to the end: first on every host at once `fleet-prepare`
// (the new release started and checked on the idle slot, serving nothing yet), then host by host in sorted
// order (rollout.batchSize at a time) it drains the host at the balancer (lb-session), runs the host's own
// `activate` (the parameters and command line a single server's Activation would run; it makes the prepared
// slot live), checks the host through its nginx and puts it back; at the end `fleet-prepare` with TIDY stops
// each host's other slots. A host that fails stops the rollout, every host that had switched goes back to
// its previous release, and the up fails naming the host: this step keeps its last outputs, so `hosts`
// (each host's release) and a preview tell the truth.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { canaryParams, parseHistory, HistoryEntry } from "./activation";
import { CanaryConfig } from "./config";
import { LoadBalancer } from "./load-balancer";
import { SshTarget } from "./pinned-ssh";
import { AGENT, ScriptBundle, SCRIPTS_DIR } from "./remote-script";

export interface FleetHost {
  target: SshTarget;
  bundle: ScriptBundle;
  /** The activate step's name (its command line says it) and its extra seconds (switchWaits). */
  stepName: string;
  extraSeconds: number;
  /** The activate verb's parameters for this host (activationParams). */
  params: pulumi.Output<string>;
}

export interface FleetSwitchArgs {
  appName: string;
  releaseId: pulumi.Input<string>;
  hosts: FleetHost[];
  /** The balancer the stack manages; undefined: loadBalancer external (no drain, no ready). */
  balancer?: LoadBalancer;
  batchSize: number;
  drainSeconds: number;
  healthTimeoutSeconds: number;
  /** strategy canary across hosts (the agent's fleet_canary.py): the first host's steps at the balancer. */
  canary?: CanaryConfig;
  after: pulumi.Resource[];
}

/** What the rollout's one JSON line says: each host's release, and the first host's history. */
export function parseRollout(stdout: string): { hosts: Record<string, string>; history: HistoryEntry[] } {
  const line = stdout.trim().split("\n").pop() ?? "";
  let r: { hosts?: Record<string, string> } = {};
  try { r = JSON.parse(line); } catch { /* preview: no output yet */ }
  return { hosts: r.hosts ?? {}, history: parseHistory(line) };
}

export class FleetSwitch extends pulumi.ComponentResource {
  public readonly step: command.local.Command;
  /** Each host's release after the last rollout that finished (address -> release id). */
  public readonly hosts: pulumi.Output<Record<string, string>>;
  public readonly history: pulumi.Output<HistoryEntry[]>;

  constructor(name: string, args: FleetSwitchArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:FleetSwitch", name, {}, opts);
    const sudo = (t: SshTarget) => (t.user === "root" ? "" : "sudo -n ");
    const hosts = args.hosts.map((h) => pulumi.all([h.params]).apply(([params]) => ({
      address: h.target.host,
      ssh: h.target,
      read: `${sudo(h.target)}python3 -I -B ${h.bundle.remoteDir}/${AGENT} state-read`,
      // strategy canary: the first host's new migrations not marked canary-safe make it a plain rollout
      ...(args.canary ? { migrations: `${sudo(h.target)}python3 -I -B ${h.bundle.remoteDir}/${AGENT} canary-migrations` } : {}),
      lease: h.bundle.stepLine(h.stepName, "default", 0, AGENT, "fleet-lease"),
      prepare: h.bundle.stepLine(h.stepName, "default", h.extraSeconds, AGENT, "fleet-prepare"),
      activate: h.bundle.stepLine(h.stepName, "default", h.extraSeconds, AGENT, "activate"),
      params,
    })));
    const b = args.balancer;
    const stdin = pulumi.all([args.releaseId, pulumi.all(hosts)]).apply(([release, hs]) => JSON.stringify({
      APP: args.appName, RELEASE_ID: release, BATCH_SIZE: args.batchSize, DRAIN_SECONDS: args.drainSeconds,
      HEALTH_TIMEOUT: args.healthTimeoutSeconds, HOSTS: hs, ...(args.canary ? canaryParams(args.canary) : {}),
      BALANCER: b ? { ssh: b.target, "lb-drain": b.drainLine, "lb-ready": b.readyLine, "lb-session": b.sessionLine,
        ...(args.canary ? { "lb-canary": b.canaryLine } : {}) } : null,
    }, undefined, 1));
    this.step = new command.local.Command(`${name}-rollout`, {
      create: `python3 -I -B ${AGENT} fleet-rollout`,
      dir: SCRIPTS_DIR,
      stdin,
      addPreviousOutputInEnv: false,
    }, { parent: this, dependsOn: [...args.after, ...(b ? [b.step] : [])] });
    const result = this.step.stdout.apply((s) => parseRollout(s ?? ""));
    this.hosts = result.apply((r) => r.hosts);
    this.history = result.apply((r) => r.history);
    this.registerOutputs({ hosts: this.hosts });
  }
}
