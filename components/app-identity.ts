// The app's identity on its server (appName, host), as a Pulumi dynamic resource whose only job is
// to refuse, at preview, an up that would rename the app in place: the new name would be deployed
// as a second app beside the first (its units, site, user and data), with nothing saying so.
import * as pulumi from "@pulumi/pulumi";

export interface AppIdentityArgs {
  appName: string;
  host: string;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async check(olds: any, news: any) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (olds?.appName && olds.host === news.host && olds.appName !== news.appName) {
      failures.push({
        property: "appName",
        reason: `flask-deploy:appName: renaming the app from '${olds.appName}' to '${news.appName}' on ${news.host} is not ` +
          "done by an up (it would deploy a second app beside the first and leave it serving). Set appName back to " +
          `'${olds.appName}', or rename on purpose: pulumi destroy (the data stays), set appName, pulumi up, copy ` +
          `/srv/${olds.appName}/shared/db/ to /srv/${news.appName}/shared/db/, then npm run purge for the old name`,
      });
    }
    return { inputs: news, failures };
  },
  async create(inputs: any) {
    return { id: `${inputs.appName}@${inputs.host}`, outs: inputs };
  },
  async diff(_id: string, olds: any, news: any) {
    return { changes: olds.appName !== news.appName || olds.host !== news.host };
  },
  async update(_id: string, _olds: any, news: any) {
    return { outs: news };
  },
};

export class AppIdentity extends pulumi.dynamic.Resource {
  constructor(name: string, args: AppIdentityArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, args, opts);
  }

  /**
   * Resolves once this registration has gone to the engine: the SDK prepares it (the provider's code serialized)
   * in promise callbacks and hands it to gRPC, which writes it on later event-loop turns. The engine then starts
   * the dynamic-resource provider (a Node.js process) for its check while the program goes on. Only timing hangs
   * on this: the steps that need the identity depend on it.
   */
  async sent(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  }
}
