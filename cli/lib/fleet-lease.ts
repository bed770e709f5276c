// The fleet's deploy lease for an fdeploy command that changes a fleet (README "Scale out"): every app server's
// lease (the one a rollout holds: fdeploy_agent/fleet_lease.py) taken in sorted host order and renewed while the
// command runs, by the agent's fleet-hold on this machine (python3, as the fleet switch). An up of any stack waits
// for it and it for an up, each naming the other; a rollback hands it over to its own up. A single server: none.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SCRIPTS_DIR } from "../../components/scripts-dir";
import type { SshTarget } from "../../components/pinned-ssh";
import { FdeployError } from "./errors";
import { AppTarget, appTarget, StackRef } from "./stack";

export interface FleetLease {
  /** The leases handed over to the stack's own deploy (a rollback's up, which starts next). */
  handover(): Promise<void>;
  /** The leases given up (also when the command failed; after a handover: that up's, which has ended). */
  end(): Promise<void>;
}

/** "<project>/<stack>": the deploy id every step of the stack's up names (remote-script.ts scriptParams). */
export function deployId(ref: StackRef): string {
  const file = ["Pulumi.yaml", "Pulumi.yml"].map((f) => path.join(ref.dir, f)).find((f) => fs.existsSync(f))!;
  const project = String(require("js-yaml").load(fs.readFileSync(file, "utf8"))?.name ?? "");
  return `${project}/${ref.stack.split("/").pop()}`;
}

/** How long a command waits for another deploy's lease on a host (FDEPLOY_LOCK_WAIT seconds; an up: timeouts.lockWait). */
function waitSeconds(): number {
  const v = process.env.FDEPLOY_LOCK_WAIT ?? "";
  return /^\d{1,5}$/.test(v) ? Number(v) : 300;
}

/** The command line of agent VERB in the live scripts of the app on T (as runOnServer runs them: root), under the
 * agent's supervisor as a deploy step is (it stops the verb when this SSH session ends: fdeploy interrupted). */
function liveAgent(t: SshTarget, app: string, verb: string, wait: number): string {
  const agent = `python3 -I -B .fdeploy/${app}/live-scripts/agent`;
  return `${t.user === "root" ? "" : "sudo -n "}${agent} supervise ${wait + 20} fdeploy-lease timeouts.lockWait --lock-wait ${wait} -- ${agent} ${verb}`;
}

/** CFG's fleet leases held for `fdeploy COMMAND`, once every host's is (undefined: a single server). */
export async function holdFleet(ref: StackRef, cfg: AppTarget, command: string): Promise<FleetLease | undefined> {
  if (!cfg.fleet) return undefined;
  const stack = deployId(ref);
  const wait = waitSeconds();
  const params = {
    APP: cfg.appName, DEPLOY: `${stack}/fdeploy-${command.replace(/ /g, "-")}`, TO: stack, WHAT: `fdeploy ${command}`, WAIT: wait,
    HOSTS: cfg.fleet.hosts.map((t) => ({
      address: t.host, ssh: t, lease: liveAgent(t, cfg.appName, "fleet-lease", wait), end: liveAgent(t, cfg.appName, "fleet-lease-end", 60),
    })),
  };
  const child = spawn("python3", ["-I", "-B", path.join(SCRIPTS_DIR, "agent"), "fleet-hold"], { stdio: ["pipe", "pipe", "inherit"] });
  child.on("error", () => undefined);   // no python3: it closes at once, and the error says so
  child.stdin.on("error", () => undefined);   // it ended early: said below
  child.stdin.write(JSON.stringify(params) + "\n");
  // its stdout: {"lease": "held" | "handed over", …} as that happens, then its one result
  const lines: string[] = [];
  let buffered = "";
  const closed = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
  const waiters: [string, (ok: boolean) => void][] = [];
  child.stdout.on("data", (d) => {
    const parts = (buffered + d).split("\n");
    buffered = parts.pop()!;
    lines.push(...parts);
    for (const [event, resolve] of waiters) if (parts.some((l) => l.startsWith(`{"lease": "${event}"`))) resolve(true);
  });
  closed.then(() => waiters.forEach(([, resolve]) => resolve(false)));
  const told = (event: string) => new Promise<boolean>((resolve) => {
    if (lines.some((l) => l.startsWith(`{"lease": "${event}"`))) return resolve(true);
    waiters.push([event, resolve]);
  });
  const error = () => {
    try { return String(JSON.parse([...lines, buffered].filter(Boolean).pop() ?? "{}").error ?? ""); } catch { return ""; }
  };
  if (!(await told("held"))) {
    throw new FdeployError(`nothing changed: the deploy lease /run/fdeploy/${cfg.appName}.lease of the fleet's hosts could not be held for fdeploy ${command}\n` +
      (error() || "the lines above say why"));
  }
  let ended: Promise<void> | undefined;
  return {
    handover: async () => {
      child.stdin.write("handover\n");
      if (!(await told("handed over"))) process.stderr.write(`fdeploy: the fleet's deploy lease was not handed over (the up waits until it runs out, 30 s): ${error()}\n`);
    },
    end: () => ended ??= (async () => {
      child.stdin.end("end\n");
      if (await closed !== 0) process.stderr.write(`fdeploy: the fleet's deploy lease was not given back (it runs out on its own in 30 s): ${error()}\n`);
    })(),
  };
}

/** holdFleet() over the fleet as the stack's state says it once the lease is held (an up it waited for may have
 * changed it: a host joined): the app read again then, and the lease taken again over a changed set of hosts. */
export async function holdCurrent(ref: StackRef, cfg: AppTarget, command: string): Promise<{ cfg: AppTarget; lease?: FleetLease }> {
  const hosts = (c: AppTarget) => JSON.stringify((c.fleet?.hosts ?? []).map((h) => [h.host, h.port]).sort());
  let lease = await holdFleet(ref, cfg, command);
  for (let tries = 0; lease && tries < 3; tries++) {
    const now = appTarget(ref);
    if (hosts(now) === hosts(cfg)) return { cfg: now, lease };
    await lease.end();
    cfg = now;
    lease = await holdFleet(ref, cfg, command);
  }
  return { cfg, lease };
}
