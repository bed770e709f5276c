// Health check through nginx after every change that can affect serving (the server agent's health): a
// request on the server to port 80 with the site's host name must answer 2xx within the timeout,
// or the update fails with the HTTP status, a body excerpt and the service's journal.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface HealthCheckArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  serverName: string;
  healthPath: string;
  timeoutSeconds: number;
  /** The site serves HTTPS (port 80 redirects): check through port 443. */
  https?: boolean;
  /** Anything whose change should re-run the check (release id, revisions…). */
  watch: pulumi.Input<string>[];
  after: pulumi.Resource[];
}

export class HealthCheck extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;

  constructor(name: string, args: HealthCheckArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:HealthCheck", name, {}, opts);
    const host = args.serverName === "_" ? "localhost" : args.serverName.split(" ")[0].replace(/^\*\./, "www.");
    this.step = remoteStep(`${name}-probe`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "health",
      extraSeconds: args.timeoutSeconds,
      params: scriptParams({
        APP: args.appName,
        HOST_HEADER: host,
        HEALTH_PATH: args.healthPath,
        HEALTH_TIMEOUT: args.timeoutSeconds,
        ...(args.https ? { SCHEME: "https" } : {}),
        WATCH: pulumi.all(args.watch).apply((w) => w.join(" ")),
      }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}
