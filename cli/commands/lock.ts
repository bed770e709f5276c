// fdeploy lock status|release: the app's deploy lock on the server (a flock in /run/fdeploy, held by
// every deploy step). It goes away with its processes, but a hung deploy holds it: `release` stops
// the processes that hold it, after confirmation.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { printJson, table } from "../lib/print";
import { AppTarget, runOnServer, serverResult } from "../lib/stack";

function lockState(cfg: AppTarget, action: "status" | "release"): any {
  const r = runOnServer(cfg, "agent", "ops-lock", { APP: cfg.appName, ACTION: action }, { capture: true });
  if (r.status !== 0) throw new FdeployError(`lock ${action} failed on ${cfg.server.host} (exit ${r.status}; see above)`);
  return serverResult(r.stdout);
}

function show(cfg: AppTarget, st: any): void {
  if (!st.held) return void console.log(`the deploy lock of ${cfg.appName} on ${cfg.server.host} is free`);
  const o = st.owner;
  console.log(`the deploy lock of ${cfg.appName} on ${cfg.server.host} is held${o ? ` since ${o.since} by ${o.user} (pid ${o.pid})` : ""}:`);
  process.stdout.write(table(["PID", "USER", "STARTED", "COMMAND"], st.processes.map((p: any) => [String(p.pid), p.user, p.started, p.command])));
}

export function register(program: Command): void {
  const lock = program.command("lock").description("the deploy lock: who holds it; release a hung one");
  stackCommand(lock, "status", "who holds the deploy lock (processes, user, since when)")
    .option("--json", "one JSON object")
    .action((opts: StackOpts) => {
      const { cfg } = target(opts);
      const st = lockState(cfg, "status");
      if (opts.json) return printJson(st);
      show(cfg, st);
    });
  stackCommand(lock, "release", "stop the processes that hold the deploy lock (a hung deploy)")
    .option("--yes", "do not ask for confirmation")
    .action(async (opts: StackOpts & { yes?: boolean }) => {
      const { cfg } = target(opts);
      const st = lockState(cfg, "status");
      show(cfg, st);
      if (!st.held) return;
      if (!opts.yes) {
        if (!process.stdin.isTTY) throw new FdeployError("lock release: confirm with --yes (no terminal to ask on)", 2);
        const rl = require("readline").createInterface({ input: process.stdin, output: process.stdout });
        const answer: string = await new Promise((res) => rl.question("stop these processes? a deploy they belong to fails [y/N] ", res));
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) throw new FdeployError("fdeploy lock release: nothing stopped (not confirmed)");
      }
      show(cfg, lockState(cfg, "release"));
    });
}
