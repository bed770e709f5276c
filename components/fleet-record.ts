// What fdeploy needs to know of a fleet (README "Scale out"), in the FlaskApp's record: every app server
// (so `--host` can pick one) and the balancer (whose runtime API shows each host's state, and which holds
// the maintenance page). A single-server stack records none of it: its record stays as it was.
import type { ServerConfig } from "./config";
import { appServers, FleetConfig } from "./config/servers";
import type { SshTarget } from "./pinned-ssh";

export interface FleetRecord {
  hosts: SshTarget[];
  balancer: SshTarget | "external";
}

export function sshTarget(s: ServerConfig): SshTarget {
  const { host, port, user, hostKey, privateKeyPath } = s;
  return { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) };
}

export function fleetRecord(cfg: { server: ServerConfig } & Partial<FleetConfig>): { fleet?: FleetRecord } {
  if (cfg.loadBalancer === undefined) return {};
  return { fleet: { hosts: appServers(cfg).map(sshTarget), balancer: cfg.loadBalancer === "external" ? "external" : sshTarget(cfg.loadBalancer) } };
}
