// A fleet's hosts for fdeploy (README "Scale out"): `--host <name|index>` picks one app server of the
// record's fleet (its address, or its place in `servers`: 1, 2 … as h1, h2 … in HAProxy); a command that
// needs one host refuses a fleet without it, naming the choices. A single server is its own only host.
import { Command } from "commander";
import type { SshTarget } from "../../components/pinned-ssh";
import { FdeployError } from "./errors";
import { AppTarget } from "./stack";

/** CMD with the --host option. */
export function hostOption(cmd: Command): Command {
  return cmd.option("--host <name|index>", "with several servers: the one to act on (its host, or 1, 2 … in servers order)");
}

/** The app servers of CFG, in `servers` order. */
export function hostsOf(cfg: AppTarget): SshTarget[] {
  return cfg.fleet?.hosts ?? [cfg.server];
}

/** "1 10.0.0.11, 2 10.0.0.12": the choices --host takes. */
function choices(hosts: SshTarget[]): string {
  return hosts.map((h, i) => `${i + 1} ${h.host}`).join(", ");
}

/** The index in HOSTS that WANTED names (an address, h<i> or <i>, from 1); a FdeployError naming the choices. */
export function hostIndex(hosts: SshTarget[], wanted: string): number {
  const byName = hosts.findIndex((h) => h.host === wanted);
  if (byName >= 0) return byName;
  const m = /^h?(\d{1,2})$/.exec(wanted);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= hosts.length) return Number(m[1]) - 1;
  throw new FdeployError(`--host ${wanted}: no such app server; the choices: ${choices(hosts)}`, 2);
}

/** CFG acting on one host: WANTED's, or the only one; COMMAND names what needs one host. */
export function oneHost(cfg: AppTarget, wanted: string | undefined, command: string): AppTarget {
  const hosts = hostsOf(cfg);
  if (wanted === undefined) {
    if (hosts.length === 1) return cfg;
    throw new FdeployError(`--host: fdeploy ${command} acts on one server and app ${cfg.appName} runs on ${hosts.length}: ${choices(hosts)}`, 2);
  }
  return { ...cfg, server: hosts[hostIndex(hosts, wanted)] };
}
