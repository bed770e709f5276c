// Shared paths (the agent's shared-create): the release's folders and files that outlive it — Flask's
// instance folder by default (sharedDirs), and files (sharedFiles) that are either the app's own or
// rendered from stack config and secrets (e.g. an instance config.py with SECRET_KEY), written
// root:<app> 0640. Re-runs for each release and whenever the settings change; the rendered text
// travels as a secret on stdin.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { renderTemplate, SharedFile } from "./app-layout";
import { Connection } from "./connection";
import { AGENT, agentResult, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface SharedPathsArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  releaseId: string;
  dirs: string[];
  files: SharedFile[];
  /** What `${NAME}` in a shared file's content can take: env, secrets, DATABASE_PATH. */
  values: pulumi.Input<Record<string, string>>;
  after: pulumi.Resource[];
}

export class SharedPaths extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;
  /** Changes when a rendered file changes (the activation then restarts the app). */
  public readonly revision: pulumi.Output<string>;

  constructor(name: string, args: SharedPathsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:SharedPaths", name, {}, opts);
    const rendered = args.files.some((f) => f.content !== undefined);
    const files = pulumi.output(args.values).apply((v) => JSON.stringify(
      args.files.map((f) => ({ path: f.path, content: f.content === undefined ? null : renderTemplate(f.content, v) }))));
    this.step = remoteStep(`${name}-link`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "shared-create",
      params: scriptParams({
        APP: args.appName, RELEASE_ID: args.releaseId, DIRS: JSON.stringify(args.dirs),
        FILES: rendered ? pulumi.secret(files) : files,
      }),
      after: args.after,
    }, this);
    // the agent's result: a time when a rendered file changed, else "" (no secret in it)
    this.revision = agentResult(pulumi.unsecret(this.step.stdout)).apply((r) => String(r.revision ?? ""));
    this.registerOutputs({});
  }
}
