// fdeploy releases: the releases the server keeps or ran, newest first — which is live, which
// failed, when each went live (the server agent's ops-releases, from the release history). On a
// fleet: every host's, one after the other (--host: one).
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { hostOption, hostsOf, oneHost } from "../lib/hosts";
import { printJson, table } from "../lib/print";
import { AppTarget, runOnServer, serverResult } from "../lib/stack";

export function register(program: Command): void {
  hostOption(stackCommand(program, "releases", "kept and past releases: which is live, which failed, with times (every host, or --host one)"))
    .option("--json", "a JSON list, newest first (several servers: an object of one list per host)")
    .action((opts: StackOpts & { host?: string }) => {
      const { cfg } = target(opts);
      if (cfg.fleet && opts.host === undefined) {
        const all = hostsOf(cfg).map((server) => [server.host, releasesOf({ ...cfg, server })] as const);
        if (opts.json) return printJson(Object.fromEntries(all));
        process.stdout.write(all.map(([host, list], i) => `host ${i + 1}  ${host}\n${releaseTable(list)}`).join("\n"));
        return;
      }
      const list = releasesOf(oneHost(cfg, opts.host, "releases"));
      if (opts.json) return printJson(list);
      process.stdout.write(releaseTable(list));
    });
}

function releasesOf(cfg: AppTarget): any[] {
  const r = runOnServer(cfg, "agent", "ops-releases", { APP: cfg.appName }, { capture: true });
  if (r.status !== 0) throw new FdeployError(`releases failed on ${cfg.server.host} (exit ${r.status})`);
  return serverResult(r.stdout, "releases");
}

function releaseTable(list: any[]): string {
  return table(["RELEASE", "STATUS", "FIRST LIVE", "LAST LIVE", "SCHEMA", "KEPT"],
    list.map((x) => [x.id, x.status, x.firstLive ?? "-", x.lastLive ?? (x.failedAt ? `failed ${x.failedAt}` : "-"),
      x.schema === null ? "-" : String(x.schema), x.kept ? "yes" : "no"]));
}
