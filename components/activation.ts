// Activation: the one switch point of a deploy (scripts/activate.sh). Makes the release live with
// the stack's strategy, health-checks it on its own socket, and keeps the previous release serving
// if the check fails. Re-runs when the release, the unit or the .env changes.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Strategy } from "./config";
import { Connection } from "./connection";
import { remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface ActivationArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  releaseId: string;
  /** Gunicorn's module:callable: the release must load it before a live slot restarts. */
  appModule: string;
  strategy: Strategy;
  healthPath: string;
  healthTimeoutSeconds: number;
  keepReleases: number;
  /** The release is pinned by a rollback (recorded as one; its schema comes down afterwards). */
  rollback: boolean;
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

/** The history lines activate.sh prints ("<time> <id> <status> strategy=… schema=N"). */
export function parseHistory(stdout: string): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^(\S+Z) ([0-9a-f]{12}) (live|failed) strategy=\S+ schema=(\S+)$/.exec(line.trim());
    if (m) out.push({ time: m[1], releaseId: m[2], status: m[3] as "live" | "failed", schemaVersion: m[4] });
  }
  return out;
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
      script: "activate.sh",
      params: scriptParams({
        APP: args.appName,
        RELEASE_ID: args.releaseId,
        APP_MODULE: args.appModule,
        STRATEGY: args.strategy,
        HEALTH_PATH: args.healthPath,
        HEALTH_TIMEOUT: args.healthTimeoutSeconds,
        KEEP_RELEASES: args.keepReleases,
        ...(args.rollback ? { ROLLBACK: 1 } : {}),
        SERVICE_REVISION: args.serviceRevision,
        ENV_REVISION: args.envRevision,
        ...(args.sharedRevision !== undefined ? { SHARED_REVISION: args.sharedRevision } : {}),
        ...(args.docker ? { RUNTIME: "docker", IMAGE_ID: args.docker.imageId } : {}),
      }),
      after: args.after,
    }, this);
    this.history = this.step.stdout.apply((s) => parseHistory(s ?? ""));
    this.registerOutputs({ history: this.history });
  }
}
