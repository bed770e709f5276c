// The app's own release commands (the agent's release-commands, fdeploy_agent/release_commands.py): e.g. `flask db upgrade`
// (Flask-Migrate/Alembic) or a guarded `flask init-db`, run in the new release as the app user with
// its environment, after a backup and the SQL migrations, before the switch. They run again only
// for a new release or changed commands, so they must be idempotent (and each one transactional).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { beforeChange, budget } from "./migrations";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface ReleaseCommandsArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  releaseId: string;
  commands: string[];
  keepBackups: number;
  /** flask-deploy:keepBackupsBytes (unset: the server's default budget). */
  keepBackupsBytes?: number;
  /** backup.beforeChange: replica: the replicated databases' restore points instead of local copies when they can be had. */
  beforeChange?: "copy" | "replica";
  /** runtime docker: run them in a container of the release's image (names as GunicornService's). */
  docker?: { envNames: string[]; sharedDirs: string[] };
  after: pulumi.Resource[];
}

export class ReleaseCommands extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;

  constructor(name: string, args: ReleaseCommandsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:ReleaseCommands", name, {}, opts);
    this.step = remoteStep(`${name}-run`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "release-commands",
      limit: "releaseCommands",
      params: scriptParams({
        APP: args.appName, RELEASE_ID: args.releaseId, COMMANDS: JSON.stringify(args.commands), KEEP_BACKUPS: args.keepBackups,
        ...budget(args.keepBackupsBytes), ...beforeChange(args.beforeChange),
        ...(args.docker ? { RUNTIME: "docker", ENV_NAMES: [...args.docker.envNames].sort().join(" "), SHARED_DIRS: args.docker.sharedDirs.join(" ") } : {}),
      }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}
