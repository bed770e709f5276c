// The HTTPS certificate on the server as a Pulumi resource, so that a missing or expired
// certificate (deleted by hand, renewals failing for months) is drift that Pulumi's own refresh
// shows and `up --refresh` repairs, like ServerState does for the app (a dynamic resource whose
// `read` runs the agent's tls-read and whose `update` runs tls-repair: issue again with the last
// deployed parameters). A plain `up` never reads the server.
import * as pulumi from "@pulumi/pulumi";
import { scriptReport, SshTarget } from "./pinned-ssh";

export interface CertificateStateArgs {
  server: SshTarget;
  appName: string;
  /** The remote scripts folder (ScriptBundle.remoteDir). */
  scriptsDir: pulumi.Input<string>;
  /** The certificate's names (serverName): a change means looking again. */
  names: string;
}

/** What the stack wants; `notAfter` and the served `names` are reported, not compared. */
const WANTED = { certificate: "valid" };

function tlsScript(inputs: any, verb: "read" | "repair"): Record<string, unknown> {
  const out = scriptReport(inputs.server, inputs.scriptsDir, "agent", `tls-${verb}`, inputs.appName);
  return { certificate: out.certificate, notAfter: out.notAfter, servedNames: out.names };
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: any) {
    return { id: `${inputs.appName}@${inputs.server.host}/certificate`, outs: { ...inputs, ...tlsScript(inputs, "read") } };
  },
  async read(id: string, props: any) {
    return { id, props: { ...props, ...tlsScript(props, "read") } };
  },
  async diff(_id: string, olds: any, news: any) {
    const changed: string[] = [];
    for (const k of ["certificate", "names", "scriptsDir", "appName", "server"]) {
      if (JSON.stringify(olds[k]) !== JSON.stringify(news[k])) changed.push(k);
    }
    return { changes: changed.length > 0, diffs: changed };
  },
  async update(_id: string, _olds: any, news: any) {
    return { outs: { ...news, ...tlsScript(news, "repair") } };
  },
};

export class CertificateState extends pulumi.dynamic.Resource {
  declare public readonly certificate: pulumi.Output<string>;
  declare public readonly notAfter: pulumi.Output<string>;

  constructor(name: string, args: CertificateStateArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, ...WANTED, notAfter: undefined, servedNames: undefined }, opts);
  }
}
