// The app's environment: /etc/fdeploy/<app>/env (root, 0600; systemd's EnvironmentFile), rendered from plain
// config (`env`) and secrets (`secrets`, set with `pulumi config set --secret`). The file's content
// travels on stdin as a secret: never on a command line, never in logs, encrypted in state.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface AppEnvironmentArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  /** Plain settings, e.g. APP_GREETING. */
  plain: Record<string, string>;
  /** Secret settings, e.g. SECRET_KEY. */
  secrets: pulumi.Input<Record<string, string>>;
  after: pulumi.Resource[];
}

/** One KEY="value" line in the syntax both systemd's EnvironmentFile and python-dotenv read. */
export function envLine(key: string, value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error(`${key}: values may not contain newlines`);
  return `${key}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function renderEnvFile(values: Record<string, string>): string {
  return Object.keys(values).sort().map((k) => envLine(k, values[k])).join("\n") + "\n";
}

export class AppEnvironment extends pulumi.ComponentResource {
  /** Changes whenever the file on the server changes (used to restart the app). */
  public readonly revision: pulumi.Output<string>;

  constructor(name: string, args: AppEnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:AppEnvironment", name, {}, opts);
    const content = pulumi.secret(pulumi.output(args.secrets).apply((s) => renderEnvFile({ ...args.plain, ...s })));
    const step: command.remote.Command = remoteStep(`${name}-file`, {
      connection: args.connection,
      bundle: args.bundle,
      script: "envfile.sh",
      params: scriptParams({ APP: args.appName, ENV: content }),
      after: args.after,
    }, this);
    this.revision = pulumi.unsecret(step.stdout); // "env revision: …" holds no secret
    this.registerOutputs({});
  }
}
