// The app's environment: /etc/fdeploy/<app>/env (root, 0600; systemd's EnvironmentFile), rendered from plain
// config (`env`) and secrets (`secrets`, set with `pulumi config set --secret`). The file's content
// travels on stdin as a secret: never on a command line, never in logs, encrypted in state. This step only
// stages it (the agent's env-stage: env.desired); the switch puts it in force with the release.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { AGENT, agentResult, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

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
  if (/[\r\n\0]/.test(value)) throw new Error(`flask-deploy:env.${key} or secrets.${key}: values may not contain newlines`);
  return `${key}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The deploy's paths an `env` or `secrets` value may name: `${APP_ROOT}`, `${SHARED}`, `${DATABASE_PATH}`. */
export function deployPaths(appRoot: string): Record<string, string> {
  return { APP_ROOT: appRoot, SHARED: `${appRoot}/shared`, DATABASE_PATH: `${appRoot}/shared/db/app.sqlite3` };
}

/** VALUES with those three names replaced (e.g. `sqlite:///${DATABASE_PATH}`); any other `${…}` stays as it is. */
export function withDeployPaths(values: Record<string, string>, paths: Record<string, string>): Record<string, string> {
  const expand = (v: string) => v.replace(/\$\{(APP_ROOT|SHARED|DATABASE_PATH)\}/g, (_, name: string) => paths[name]);
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, expand(v)]));
}

export function renderEnvFile(values: Record<string, string>): string {
  return Object.keys(values).sort().map((k) => envLine(k, values[k])).join("\n") + "\n";
}

export class AppEnvironment extends pulumi.ComponentResource {
  /** Changes whenever the staged file changes (the switch then restarts the app): an HMAC, never a hash of a secret. */
  public readonly revision: pulumi.Output<string>;

  constructor(name: string, args: AppEnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:AppEnvironment", name, {}, opts);
    const content = pulumi.secret(pulumi.output(args.secrets).apply((s) => renderEnvFile({ ...args.plain, ...s })));
    const step: command.remote.Command = remoteStep(`${name}-file`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "env-stage",
      params: scriptParams({ APP: args.appName, ENV: content }),
      after: args.after,
    }, this);
    this.revision = agentResult(pulumi.unsecret(step.stdout)).apply((r) => String(r.revision ?? "")); // holds no secret
    this.registerOutputs({});
  }
}
