// The app's PostgreSQL as it is (database engine postgres), read like ServerState reads the app server:
// a dynamic resource whose create and refresh ask the database server (the agent's pg-status: version,
// running, the app's database and its size). `pulumi refresh` / `preview --refresh` show a stopped server
// or a missing database as one line "database drift on …"; a plain `up` never reads the server.
import * as pulumi from "@pulumi/pulumi";
import { scriptReport, SshTarget } from "./pinned-ssh";

export interface DatabaseStateArgs {
  server: SshTarget;
  appName: string;
  /** The script folder on the database server (the DatabaseServer's bundle). */
  scriptsDir: pulumi.Input<string>;
}

// archiving: false only where pgBackRest archives WAL (backup with PostgreSQL) and archive_command fails
const WATCHED = ["running", "exists", "archiving"] as const;

function report(inputs: any): Record<string, unknown> {
  const { ok: _ok, ...r } = scriptReport(inputs.server, inputs.scriptsDir, "agent", "pg-status", inputs.appName);
  return r;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: any) {
    return { id: `${inputs.appName}@${inputs.server.host}/postgres`, outs: { ...inputs, ...report(inputs) } };
  },
  async read(id: string, props: any) {
    return { id, props: { ...props, ...report(props) } };
  },
  async diff(id: string, olds: any, news: any) {
    const drifted = WATCHED.filter((k) => olds[k] === false);
    if (drifted.length) {
      const said: Set<string> = ((globalThis as any).fdeployDriftSaid ??= new Set<string>());
      const line = `database drift on ${id}: ${drifted.map((k) => `${k} (false)`).join(", ")} — pulumi up --refresh reads it again; ` +
        (drifted.includes("archiving") ? "WAL archiving to the backup repository fails (fdeploy backup status says since when; the server's log says why); " : "") +
        `start the server (systemctl start postgresql) or restore the database`;
      if (!said.has(line)) console.error(line);
      said.add(line);
    }
    const changed: string[] = [...drifted];
    for (const k of ["scriptsDir", "appName", "server"]) if (JSON.stringify(olds[k]) !== JSON.stringify(news[k])) changed.push(k);
    return { changes: changed.length > 0, diffs: changed };
  },
  async update(_id: string, _olds: any, news: any) {
    return { outs: { ...news, ...report(news) } };
  },
};

export class DatabaseState extends pulumi.dynamic.Resource {
  declare public readonly version: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<boolean>;
  declare public readonly exists: pulumi.Output<boolean>;
  declare public readonly sizeBytes: pulumi.Output<number>;

  constructor(name: string, args: DatabaseStateArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, version: undefined, running: undefined, exists: undefined, sizeBytes: undefined }, opts);
  }
}
