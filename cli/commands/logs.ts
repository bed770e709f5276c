// fdeploy logs: the app's journal (all its slots), or nginx's access and error logs of its site.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { hostOption, oneHost } from "../lib/hosts";
import { runOnServer } from "../lib/stack";

interface LogOpts extends StackOpts {
  since?: string;
  lines: string;
  nginx?: boolean;
  grep?: string;
  follow?: boolean;
  host?: string;
  job?: string;
}

export function register(program: Command): void {
  hostOption(stackCommand(program, "logs", "the app's journal (Gunicorn and the app), or with --nginx the site's access and error logs"))
    .option("--since <when>", "only newer lines: 30s, 15m, 1h, 2d (or a journalctl time, e.g. \"2026-12-05 06:00\")")
    .option("-n, --lines <n>", "the last N lines", "100")
    .option("--nginx", "nginx's access and error logs of the app's site instead")
    .option("--job <name>", "a scheduled job's journal instead (fdeploy jobs lists them)")
    .option("--grep <regex>", "only lines matching this regular expression")
    .option("-f, --follow", "keep printing new lines (Ctrl-C stops)")
    .action((opts: LogOpts) => {
      if (!/^\d{1,6}$/.test(opts.lines)) throw new FdeployError(`--lines: expected a number, got '${opts.lines}'`, 2);
      if (opts.since && !/^[0-9A-Za-z :.+-]{1,40}$/.test(opts.since)) throw new FdeployError(`--since: expected e.g. 1h or "2026-12-05 06:00", got '${opts.since}'`, 2);
      if (opts.job && !/^[a-z0-9][a-z0-9_-]{0,39}$/.test(opts.job)) throw new FdeployError(`--job: expected a job name, got '${opts.job}'`, 2);
      if (opts.job && opts.nginx) throw new FdeployError("--job and --nginx: choose one", 2);
      const cfg = oneHost(target(opts).cfg, opts.host, "logs");
      const r = runOnServer(cfg, "agent", "logs", {
        APP: cfg.appName, SINCE: opts.since ?? "", LINES: opts.lines, GREP: opts.grep ?? "", FOLLOW: !!opts.follow, NGINX: !!opts.nginx,
        ...(opts.job ? { JOB: opts.job } : {}),
      }, { args: ["--field", "lines"] });   // (nginx's logs without --follow: the lines the agent read)
      // journalctl exits 1 when --grep matched nothing: not an error
      if (r.status !== 0 && r.status !== 1) throw new FdeployError(`logs failed on ${cfg.server.host} (exit ${r.status})`);
    });
}
