// fdeploy releases: the releases the server keeps or ran, newest first — which is live, which
// failed, when each went live (the server agent's ops-releases, from the release history).
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { printJson, table } from "../lib/print";
import { runOnServer, serverResult } from "../lib/stack";

export function register(program: Command): void {
  stackCommand(program, "releases", "kept and past releases: which is live, which failed, with times")
    .option("--json", "a JSON list, newest first")
    .action((opts: StackOpts) => {
      const { cfg } = target(opts);
      const r = runOnServer(cfg, "agent", "ops-releases", { APP: cfg.appName }, { capture: true });
      if (r.status !== 0) throw new FdeployError(`releases failed on ${cfg.server.host} (exit ${r.status})`);
      const list: any[] = serverResult(r.stdout, "releases");
      if (opts.json) return printJson(list);
      process.stdout.write(table(["RELEASE", "STATUS", "FIRST LIVE", "LAST LIVE", "SCHEMA", "KEPT"],
        list.map((x) => [x.id, x.status, x.firstLive ?? "-", x.lastLive ?? (x.failedAt ? `failed ${x.failedAt}` : "-"),
          x.schema === null ? "-" : String(x.schema), x.kept ? "yes" : "no"])));
    });
}
