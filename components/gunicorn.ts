// Gunicorn service: the systemd template units fdeploy-<app>@.service/.socket (the agent's unit-stage,
// scripts/agent/fdeploy_agent/units.py). Runs as the app user, restarts on failure, logs to the journal,
// listens on a unix socket per slot. This step only stages the units; the Activation puts them in force
// (the one switch point). `pulumi destroy` removes them (the agent's service-delete).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { AGENT, agentResult, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface GunicornServiceArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  workers: number;
  /** WSGI target, e.g. wsgi:app. */
  appModule: string;
  /** Seconds a request may take (gunicorn --timeout). */
  timeoutSeconds: number;
  /** runtime docker: Gunicorn runs in the slot's release image (agent units.docker_unit). */
  docker?: {
    /** The names the environment file sets (handed to the container by name). */
    envNames: string[];
    /** sharedDirs, mounted at /app/<dir>. */
    sharedDirs: string[];
    memory?: string;
    cpus?: number;
    /** The pinned CA file of a managed database server (config pinnedCaFile), mounted read-only. */
    pgPin?: string;
  };
  after: pulumi.Resource[];
}

/** The unit-stage step's parameters (its inputs: a change re-stages the unit). */
export function unitStageParams(args: Pick<GunicornServiceArgs, "appName" | "workers" | "appModule" | "timeoutSeconds" | "docker">): Record<string, string | number> {
  return {
    APP: args.appName,
    WORKERS: args.workers,
    APP_MODULE: args.appModule,
    TIMEOUT: args.timeoutSeconds,
    ...(args.docker ? {
      RUNTIME: "docker",
      ENV_NAMES: [...args.docker.envNames].sort().join(" "),
      SHARED_DIRS: args.docker.sharedDirs.join(" "),
      ...(args.docker.memory ? { MEMORY: args.docker.memory } : {}),
      ...(args.docker.cpus !== undefined ? { CPUS: String(args.docker.cpus) } : {}),
      ...(args.docker.pgPin ? { PG_PIN: args.docker.pgPin } : {}),
    } : {}),
  };
}

export class GunicornService extends pulumi.ComponentResource {
  /** Changes whenever the unit file changes (used to restart the app). */
  public readonly revision: pulumi.Output<string>;
  public readonly unit: command.remote.Command;

  constructor(name: string, args: GunicornServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:GunicornService", name, {}, opts);
    this.unit = remoteStep(`${name}-unit`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "unit-stage",
      deleteWith: args.appName,
      deleteVerb: "service-delete",
      params: scriptParams(unitStageParams(args)),
      after: args.after,
    }, this);
    this.revision = agentResult(this.unit.stdout).apply((r) => String(r.revision ?? ""));
    this.registerOutputs({});
  }
}
