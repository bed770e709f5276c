// fdeploy jobs [--json]: the app's scheduled jobs (stack config `jobs`) as the server runs them —
// schedule, last run (time, result, exit status), next run. fdeploy jobs run NAME: run one now,
// wait for it, print its output (journal) and result; exit 1 when it failed. (the server agent's jobs-list, jobs-run: fdeploy_agent/jobs.py)
// On a fleet, `run` holds the fleet's deploy lease while the job runs (cli/lib/fleet-lease.ts): never mid-rollout.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { printJson, table } from "../lib/print";
import { holdCurrent } from "../lib/fleet-lease";
import { runOnServer } from "../lib/stack";

function lastRun(j: any): string {
  const l = j.lastRun;
  if (!l) return "never (since boot)";
  if (l.result === "running") return `running since ${l.started}`;
  if (l.result === "skipped") return "skipped (no live release)";
  return `${l.started} ${l.result}${l.result === "success" ? "" : ` (exit ${l.exitStatus}${l.exit && l.exit !== "exited" ? `, ${l.exit}` : ""})`}`;
}

export function register(program: Command): void {
  const jobs = stackCommand(program, "jobs", "the scheduled jobs: schedule, last run and its result, next run (run NAME: run one now)")
    .option("--json", "a JSON list")
    .enablePositionalOptions()
    .action((opts: StackOpts) => {
      const { ref, cfg } = target(opts);
      const r = runOnServer(cfg, "agent", "jobs-list", { APP: cfg.appName }, { capture: true });
      if (r.status === 4) throw new FdeployError(`the scripts on ${cfg.server.host} predate scheduled jobs: pulumi up --stack ${ref.stack} once`);
      if (r.status !== 0) throw new FdeployError(`jobs failed on ${cfg.server.host} (exit ${r.status}; see above)`);
      const answer = JSON.parse(r.stdout.trim().split("\n").pop()!);
      const list: any[] = Array.isArray(answer) ? answer : answer.jobs;   // (a list: the scripts before the agent's jobs-list)
      if (opts.json) return printJson(list);
      if (!list.length) {
        const configured = cfg.jobs;
        return void console.log(configured.length
          ? `no jobs on ${cfg.server.host} yet; the stack configures ${configured.join(", ")}: pulumi up --stack ${ref.stack}`
          : `no scheduled jobs (set jobs.<name>.schedule and jobs.<name>.command in stack ${ref.stack}, see README "Scheduled jobs")`);
      }
      process.stdout.write(table(["JOB", "SCHEDULE", "LAST RUN", "NEXT RUN", "COMMAND"],
        list.map((j) => [j.name, j.schedule ?? "?", lastRun(j), j.nextRun ?? (j.timer === "active" ? "?" : `timer ${j.timer}`), j.command ?? "?"])));
    });

  stackCommand(jobs, "run", "run a job now in the live release and wait for it: its output and result (exit 1 if it failed)")
    .argument("<name>", "the job's name (fdeploy jobs lists them)")
    .option("--json", "the result as one JSON object (the job's output still goes to stderr)")
    .action(async (name: string, opts: StackOpts) => {
      if (!/^[a-z0-9][a-z0-9_-]{0,39}$/.test(name)) throw new FdeployError(`jobs run: '${name}' is not a job name (fdeploy jobs lists them)`, 2);
      const { ref, cfg: read } = target(opts);
      const { cfg, lease } = await holdCurrent(ref, read, "jobs run");
      let r: ReturnType<typeof runOnServer>;
      try {
        r = runOnServer(cfg, "agent", "jobs-run", { APP: cfg.appName, NAME: name }, { capture: true });
      } finally {
        await lease?.end();
      }
      if (r.status === 4) throw new FdeployError(`the scripts on ${cfg.server.host} predate scheduled jobs: pulumi up --stack ${ref.stack} once`);
      if (r.status !== 0) throw new FdeployError(`jobs run ${name} failed on ${cfg.server.host} (exit ${r.status}; see above)`);
      // the agent's jobs-run: {"output": [lines], "job": {…}}; the scripts before it: the lines, then the job's JSON
      const lines = r.stdout.replace(/\n$/, "").split("\n");
      let result = JSON.parse(lines.pop()!);
      if (result.job) {
        lines.splice(0, lines.length, ...result.output);
        result = result.job;
      }
      const output = lines.length ? lines.join("\n") + "\n" : "";
      if (opts.json) {
        process.stderr.write(output);
        printJson(result);
      } else {
        process.stdout.write(output);
        console.log(`job ${name}: ${lastRun(result)}${result.lastRun?.ended ? `, ended ${result.lastRun.ended}` : ""}`);
      }
      if (result.lastRun?.result !== "success") process.exitCode = 1;
    });
}
