// LoadBalancer: HAProxy (Debian's) on a server the stack manages, in front of a FlaskApp's app servers
// (README "Scale out"). One remote step (the agent's lb-configure) writes this app's part of haproxy.cfg
// — every host with a health check through its nginx — validates the whole with `haproxy -c` and reloads
// gracefully. The fleet switch drains and readies hosts through it (drainLine, readyLine). Its file is
// per app (/etc/fdeploy/haproxy/<app>.json), so two FlaskApps can share one balancer; deleting the step
// (the app leaves the balancer, or a destroy) removes that part, and stops HAProxy when none is left.
// The step's name carries the balancer's host: a `loadBalancer.host` changed is a new step on the new host
// and the old one's delete (lb-delete, with its last inputs: on the old host), not an update that would
// leave the app's part on the old balancer. A host that leaves `servers` is drained there first (lb-configure).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ServerConfig, StepLimits } from "./config";
import { connectionFor } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";
import { SshTarget } from "./pinned-ssh";
import { BalancerTls, tlsParams } from "./balancer-tls";

export interface LoadBalancerArgs {
  server: ServerConfig;
  appName: string;
  /** The app servers' addresses, in `servers` order (h1, h2 … in HAProxy). */
  hosts: string[];
  serverName: string;
  healthPath: string;
  limits: StepLimits;
  /** How long a drain waits for in-flight requests (rollout.drainSeconds). */
  drainSeconds: number;
  staging: string;
  /** HTTPS at the balancer (balancer-tls.ts): the stack's own certificate. */
  tls?: BalancerTls;
}

export class LoadBalancer extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;
  public readonly target: SshTarget;
  /** The supervised command lines of the drain and ready verbs on the balancer (the fleet switch runs them). */
  public readonly drainLine: string;
  public readonly readyLine: string;
  /** strategy canary across hosts: weights, log marks and gates at the balancer (haproxy_canary.py). */
  public readonly canaryLine: string;
  /** The session line (agent lb_session.py): the rollout's drains and readies in one process on the balancer. */
  public readonly sessionLine: string;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:LoadBalancer", name, {}, opts);
    const { host, port, user, hostKey, privateKeyPath } = args.server;
    this.target = { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) };
    const connection = connectionFor(args.server);
    const bundle = new ScriptBundle(`${name}-scripts`, {
      connection, appName: args.appName, sudo: user !== "root", limits: args.limits, staging: args.staging,
    }, { parent: this });
    // a stack deployed before the name carried the host keeps its step (the alias) until the host changes
    this.step = remoteStep(`${name}-configure-${host}`, {
      connection, bundle, script: AGENT, verb: "lb-configure", limit: "build", deleteWith: args.appName, deleteVerb: "lb-delete",
      label: `${name}-configure`,
      params: scriptParams({
        APP: args.appName, SERVER_NAME: args.serverName, HEALTH_PATH: args.healthPath, HOSTS: args.hosts.join(","),
        DRAIN_SECONDS: args.drainSeconds, ...tlsParams(args.tls),
      }),
    }, this, [{ name: `${name}-configure` }]);
    this.drainLine = bundle.stepLine(`${name}-drain`, "default", args.drainSeconds, AGENT, "lb-drain");
    this.readyLine = bundle.stepLine(`${name}-ready`, "default", 0, AGENT, "lb-ready");
    this.canaryLine = bundle.stepLine(`${name}-canary`, "default", 0, AGENT, "lb-canary");
    // its time limit: the default one and a drain and a minute per host (past it, the rollout starts another)
    this.sessionLine = bundle.stepLine(`${name}-session`, "default", args.hosts.length * (args.drainSeconds + 60), AGENT, "lb-session");
    this.registerOutputs({});
  }
}
