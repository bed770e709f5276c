// nginx site: renders the server block (nginx-site.ts) and installs it with the agent's site-create,
// which runs `nginx -t` before reloading and keeps the previous config if the test fails.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { renderSite, SiteSettings } from "./nginx-site";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface NginxSiteArgs extends SiteSettings {
  connection: Connection;
  bundle: ScriptBundle;
  after: pulumi.Resource[];
}

export class NginxSite extends pulumi.ComponentResource {
  public readonly config: string;
  public readonly step: command.remote.Command;

  constructor(name: string, args: NginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:NginxSite", name, {}, opts);
    this.config = renderSite(args);
    this.step = remoteStep(`${name}-site`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "site-create",
      deleteWith: args.appName,
      deleteVerb: "site-delete",
      params: scriptParams({ APP: args.appName, SITE: this.config }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}
