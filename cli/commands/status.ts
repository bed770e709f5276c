// fdeploy status: what the server runs now — live release and its age, slots and their units,
// health now, last deploy, disk use, drift, maintenance (the server agent's ops-status).
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { age, bytes, printJson } from "../lib/print";
import { AppTarget, runOnServer, serverResult } from "../lib/stack";

export function register(program: Command): void {
  stackCommand(program, "status", "the live release, its slots, health, last deploy, disk use, drift and maintenance mode")
    .option("--json", "one JSON object")
    .action((opts: StackOpts) => {
      const { ref, cfg } = target(opts);
      const r = runOnServer(cfg, "agent", "ops-status", { APP: cfg.appName }, { capture: true });
      if (r.status !== 0) throw new FdeployError(`status failed on ${cfg.server.host} (exit ${r.status})`);
      const st = { stack: ref.stack, app: cfg.appName, host: cfg.server.host, ...serverResult(r.stdout), ...databaseStatus(cfg) };
      if (opts.json) return printJson(st);
      const m = st.maintenance;
      const lines = [
        `app ${st.app} on ${cfg.server.user}@${st.host} (stack ${st.stack})`,
        `live release  ${st.release}  live since ${st.liveSince ?? "?"} (${age(st.ageSeconds)} ago), installed ${st.installedAt}`,
        `health        GET ${st.health.path} -> ${st.health.status || "no answer"}${st.health.ok ? "" : "  UNHEALTHY"}`,
        ...st.slots.map((s: any, i: number) =>
          `${i ? "              " : "slots         "}${s.name.padEnd(7)} ${s.release}  ${s.state}${s.name === st.liveSlot ? "  (live)" : ""}`),
        ...(st.canary ? [`canary        ${st.canary.inProgress ? "IN PROGRESS" : "interrupted (the next deploy sends all traffic back to the live slot)"}: ` +
          `release ${st.canary.release} on slot ${st.canary.slot}, step ${st.canary.step}/${st.canary.steps} (${st.canary.percent} % of requests) since ${st.canary.since}`] : []),
        `last deploy   ${st.lastDeploy ? `${st.lastDeploy.time} ${st.lastDeploy.release} ${st.lastDeploy.status} (${st.lastDeploy.strategy})${st.lastDeploy.by ? ` by ${st.lastDeploy.by}` : ""}` : "none"}`,
        `disk          releases ${bytes(st.disk.releasesBytes)}, backups ${bytes(st.disk.backupsBytes)}, database ${bytes(st.disk.databaseBytes)}`,
        `drift         ${st.drift.length ? `${st.drift.join(", ")} (pulumi up --refresh --stack ${st.stack} repairs it)` : "none"}`,
        `maintenance   ${m.on ? `ON since ${m.since} by ${m.by} (fdeploy maintenance off)` : "off"}`,
        ...(st.database ? [`database      ${describeDatabase(st.database)}`] : []),
        ...(st.database?.backup ? [`backup        pgBackRest: ${st.database.backup.lines.join("; ")}`] : []),
      ];
      process.stdout.write(lines.join("\n") + "\n");
    });
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
