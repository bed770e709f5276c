// Base system: OS packages, the unprivileged app and build users and the directory layout
// (the agent's base-create: fdeploy_agent/base_system.py). Destroying it removes the app's code, never
// its data (base-delete; `npm run purge` does: base-purge).
import * as pulumi from "@pulumi/pulumi";
import { Connection } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

/** What every app server needs; curl serves the on-server health checks. */
// acl: setfacl, for the app root that only the app reads and nginx and the build user pass through (base-create)
export const BASE_PACKAGES = ["python3", "python3-venv", "nginx", "sqlite3", "curl", "acl"];
/** runtime docker: Debian's engine (and CLI, which the provider's ssh:// link runs: docker system dial-stdio). */
export const DOCKER_PACKAGES = ["docker.io"];

export interface BaseSystemArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  /** Where releases/, shared/ and current live, e.g. /srv/flaskapp. */
  appRoot: string;
  appUser: string;
  /** Steps that must finish first (checks that refuse a deploy before the server changes). */
  after?: pulumi.Resource[];
  /** runtime docker: also the Docker engine. */
  docker?: boolean;
}

export class BaseSystem extends pulumi.ComponentResource {
  public readonly appRoot: string;
  public readonly appUser: string;
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: BaseSystemArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:BaseSystem", name, {}, opts);
    this.appRoot = args.appRoot;
    this.appUser = args.appUser;
    this.ready = remoteStep(`${name}-setup`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "base-create",
      deleteVerb: "base-delete",
      limit: "build",   // installs packages
      deleteWith: args.appName,
      params: scriptParams({
        APP: args.appName,
        APP_ROOT: args.appRoot,
        APP_USER: args.appUser,
        // the stack's name, for the commands the server's messages print (destroy: how to purge)
        STACK: pulumi.getStack(),
        PACKAGES: [...BASE_PACKAGES, ...(args.docker ? DOCKER_PACKAGES : [])].join(" "),
      }),
      after: args.after,
    }, this);
    this.registerOutputs({ appRoot: this.appRoot });
  }
}
