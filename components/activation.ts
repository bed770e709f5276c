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
  strategy: Strategy;
  healthPath: string;
  healthTimeoutSeconds: number;
  keepReleases: number;
  /** Revisions of what the running service reads; a change restarts it. */
  serviceRevision: pulumi.Input<string>;
  envRevision: pulumi.Input<string>;
  after: pulumi.Resource[];
}

export class Activation extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;

  constructor(name: string, args: ActivationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Activation", name, {}, opts);
    this.step = remoteStep(`${name}-switch`, {
      connection: args.connection,
      bundle: args.bundle,
      script: "activate.sh",
      params: scriptParams({
        APP: args.appName,
        RELEASE_ID: args.releaseId,
        STRATEGY: args.strategy,
        HEALTH_PATH: args.healthPath,
        HEALTH_TIMEOUT: args.healthTimeoutSeconds,
        KEEP_RELEASES: args.keepReleases,
        SERVICE_REVISION: args.serviceRevision,
        ENV_REVISION: args.envRevision,
      }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}
