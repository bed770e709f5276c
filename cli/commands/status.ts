// fdeploy status: what the server runs now — live release and its age, slots and their units,
// health now, last deploy, disk use, drift, maintenance (the server agent's ops-status); on a fleet every
// host and the balancer's view of each (--host: one).
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { age, bytes, printJson } from "../lib/print";
import { hostOption, hostsOf, oneHost } from "../lib/hosts";
import { AppTarget, runOnServer, serverResult } from "../lib/stack";

export function register(program: Command): void {
  hostOption(stackCommand(program, "status", "the live release, its slots, health, last deploy, disk use, drift and maintenance mode " +
    "(with several servers: every host and the balancer's view, or --host one)"))
    .option("--json", "one JSON object")
    .action((opts: StackOpts & { host?: string }) => {
      const { ref, cfg } = target(opts);
      if (cfg.fleet && opts.host === undefined) return fleetStatus(ref.stack, cfg, !!opts.json);
      const one = oneHost(cfg, opts.host, "status");
      const st = { stack: ref.stack, app: one.appName, host: one.server.host, ...hostStatus(one), ...databaseStatus(one) };
      if (opts.json) return printJson(st);
      process.stdout.write([`app ${st.app} on ${one.server.user}@${st.host} (stack ${st.stack})`, ...statusLines(st, ref.stack),
        ...(st.database ? [`database      ${describeDatabase(st.database)}`] : []),
        ...(st.database?.backup ? [`backup        pgBackRest: ${st.database.backup.lines.join("; ")}`] : [])].join("\n") + "\n");
    });
}

/** The agent's ops-status on CFG's server. */
function hostStatus(cfg: AppTarget): Record<string, any> {
  const r = runOnServer(cfg, "agent", "ops-status", { APP: cfg.appName }, { capture: true });
  if (r.status !== 0) throw new FdeployError(`status failed on ${cfg.server.host} (exit ${r.status})`);
  return serverResult(r.stdout);
}

function statusLines(st: Record<string, any>, stack: string): string[] {
  const m = st.maintenance;
  return [
    `live release  ${st.release}  live since ${st.liveSince ?? "?"} (${age(st.ageSeconds)} ago), installed ${st.installedAt}`,
    `health        GET ${st.health.path} -> ${st.health.status || "no answer"}${st.health.ok ? "" : "  UNHEALTHY"}`,
    ...st.slots.map((s: any, i: number) =>
      `${i ? "              " : "slots         "}${s.name.padEnd(7)} ${s.release}  ${s.state}${s.name === st.liveSlot ? "  (live)" : ""}`),
    ...(st.canary ? [`canary        ${st.canary.inProgress ? "IN PROGRESS" : "interrupted (the next deploy sends all traffic back to the live slot)"}: ` +
      `release ${st.canary.release} on slot ${st.canary.slot}, step ${st.canary.step}/${st.canary.steps} (${st.canary.percent} % of requests) since ${st.canary.since}`] : []),
    `last deploy   ${st.lastDeploy ? `${st.lastDeploy.time} ${st.lastDeploy.release} ${st.lastDeploy.status} (${st.lastDeploy.strategy})${st.lastDeploy.by ? ` by ${st.lastDeploy.by}` : ""}` : "none"}`,
    `disk          releases ${bytes(st.disk.releasesBytes)}, backups ${bytes(st.disk.backupsBytes)}, database ${bytes(st.disk.databaseBytes)}`,
    `drift         ${st.drift.length ? `${st.drift.join(", ")} (pulumi up --refresh --stack ${stack} repairs it)` : "none"}`,
    `maintenance   ${m.on ? `ON since ${m.since} by ${m.by} (fdeploy maintenance off)` : "off"}`,
  ];
}

/** Every host of a fleet (one unreachable host does not hide the others) and the balancer's view of each. */
function fleetStatus(stack: string, cfg: AppTarget, json: boolean): void {
  const hosts = hostsOf(cfg).map((server, i) => {
    try {
      return { host: server.host, index: i + 1, ...hostStatus({ ...cfg, server }) };
    } catch (e: any) {
      return { host: server.host, index: i + 1, error: String(e.message ?? e).split("\n")[0] };
    }
  });
  const st = { stack, app: cfg.appName, hosts, balancer: balancerView(cfg), ...databaseStatus(cfg) };
  if (json) return printJson(st);
  const lines = [`app ${st.app} on ${hosts.length} servers (stack ${stack})`];
  for (const h of hosts as Record<string, any>[]) {
    lines.push("", `host ${h.index}  ${h.host}${h.error ? `  UNREACHABLE: ${h.error}` : ""}`, ...(h.error ? [] : statusLines(h, stack).map((l) => "  " + l)));
  }
  const b = st.balancer;
  lines.push("", b.host === "external" ? "balancer      external (loadBalancer: external): its view is your balancer's"
    : `balancer      ${b.host}${b.error ? `  UNREACHABLE: ${b.error}` : ""}`);
  for (const [address, s] of Object.entries<any>(b.hosts ?? {})) lines.push(`  ${address.padEnd(15)} ${s.status}${s.inFlight ? ` (${s.inFlight} in flight)` : ""}`);
  if (b.maintenance?.on) lines.push(`  maintenance ON since ${b.maintenance.since} by ${b.maintenance.by}: every request gets the page (fdeploy maintenance off)`);
  if (st.database) lines.push("", `database      ${describeDatabase(st.database)}`);
  process.stdout.write(lines.join("\n") + "\n");
}

/** Each app server's state at the balancer (UP, DRAIN, DOWN, MAINT …: HAProxy's runtime API, the agent's lb-status). */
export function balancerView(cfg: AppTarget): {
  host: string; hosts?: Record<string, { status: string; inFlight: number }>; maintenance?: { on: boolean; since?: string; by?: string }; error?: string;
} {
  const lb = cfg.fleet?.balancer;
  if (lb === undefined || lb === "external") return { host: "external", error: "not managed by the stack (loadBalancer: external)" };
  try {
    const r = runOnServer({ appName: cfg.appName, server: lb }, "agent", "lb-status", { APP: cfg.appName }, { capture: true, keepStderr: true });
    if (r.status !== 0) return { host: lb.host, error: r.stderr.trim().split("\n").pop() ?? `exit ${r.status}` };
    const { servers, maintenance } = serverResult(r.stdout) as { servers: Record<string, { status: string; scur: string }>; maintenance?: any };
    const hosts = hostsOf(cfg);
    return { host: lb.host, ...(maintenance ? { maintenance } : {}), hosts: Object.fromEntries(Object.entries(servers).map(([name, s]) => {
      const i = Number(name.slice(1)) - 1;
      return [hosts[i]?.host ?? name, { status: s.status, inFlight: Number(s.scur) || 0 }];
    })) };
  } catch (e: any) {
    return { host: lb.host, error: String(e.message ?? e).split("\n")[0] };
  }
}

/** With `database` set: the PostgreSQL server's report (the agent's pg-status there), or why it could not be had. */
function databaseStatus(cfg: AppTarget): { database?: Record<string, any> } {
  const d = cfg.database;
  if (!d) return {};
  if (!("server" in d)) return { database: { engine: "postgres", url: true } };
  const where = { engine: "postgres", host: d.server.host, name: d.name };
  try {
    const r = runOnServer({ appName: cfg.appName, server: d.server }, "agent", "pg-status", { APP: cfg.appName }, { capture: true, keepStderr: true });
    if (r.status !== 0) return { database: { ...where, reachable: false, error: r.stderr.trim().split("\n").pop() ?? `exit ${r.status}` } };
    return { database: { ...where, reachable: true, ...serverResult(r.stdout) } };
  } catch (e: any) {
    return { database: { ...where, reachable: false, error: String(e.message ?? e).split("\n")[0] } };
  }
}

function describeDatabase(d: Record<string, any>): string {
  if (d.url) return "PostgreSQL at database.url (not managed by the stack)";
  if (!d.reachable) return `postgres on ${d.host} UNREACHABLE: ${d.error}`;
  if (!d.running) return `postgres ${d.version ?? ""} on ${d.host} NOT RUNNING (pulumi up starts it)`;
  return `postgres ${d.version} on ${d.host}, running; database ${d.name} ${d.exists ? bytes(d.sizeBytes) : "MISSING (pulumi up creates it)"}`;
}
