// The preflight: before the migrations and the release commands touch the database, the new release must
// load as its slot would run it — app user, sandbox, the staged environment, Gunicorn's own loader and the
// unit's own Gunicorn options (the agent's `preflight`, components/scripts/agent/fdeploy_agent/preflight.py).
// It requests no route: a request could write to a database the release commands have not set up yet (the
// switch's own preflight GETs the health path before a live slot restarts). Not under a rollback (the kept release ran here) or with
// runtime docker (the image's venv is not on the host: the new slot's own check decides).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface PreflightArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  releaseId: pulumi.Input<string>;
  appModule: string;
  healthPath: string;
  healthTimeoutSeconds: number;
  /** The staged settings it loads the release with: a change runs it again. */
  envRevision: pulumi.Input<string>;
  unitRevision: pulumi.Input<string>;
  after: pulumi.Resource[];
}

export class Preflight extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;

  constructor(name: string, args: PreflightArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Preflight", name, {}, opts);
    this.step = remoteStep(`${name}-check`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "preflight",
      extraSeconds: args.healthTimeoutSeconds,
      params: scriptParams({
        APP: args.appName, RELEASE_ID: args.releaseId, APP_MODULE: args.appModule, HEALTH_PATH: args.healthPath,
        HEALTH_TIMEOUT: args.healthTimeoutSeconds, ENV_REVISION: args.envRevision, UNIT_REVISION: args.unitRevision,
      }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}
