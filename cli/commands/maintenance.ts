// fdeploy maintenance on|off: nginx answers every request with 503 and a page (the app keeps
// running; requests from the server itself, like the deploy's health check, still reach it). The
// mode is a root-only file the app's nginx site includes (the server agent's maintenance): deploys keep it, and
// drift checks (the agent's state-read) treat it as intended. With several servers behind a balancer the
// stack manages, the page is at the balancer, one place for every host (the agent's lb-maintenance there), under
// the fleet's deploy lease (cli/lib/fleet-lease.ts): never between two hosts of a rollout.
import { Command } from "commander";
import * as fs from "fs";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { holdCurrent } from "../lib/fleet-lease";
import { AppTarget, runOnServer, StackRef } from "../lib/stack";

export function register(program: Command): void {
  stackCommand(program, "maintenance", "turn maintenance mode on or off: nginx answers 503 with a page, the app keeps running")
    .argument("<mode>", "on | off")
    .option("--message <text>", "the page's message (HTML-escaped)")
    .option("--html <file>", "a whole HTML page of your own instead")
    .action(async (mode: string, opts: StackOpts & { message?: string; html?: string }) => {
      if (mode !== "on" && mode !== "off") throw new FdeployError(`fdeploy maintenance: expected on or off, got '${mode}'`, 2);
      const html = opts.html ? fs.readFileSync(opts.html, "utf8") : "";
      if (html.length > 256 * 1024) throw new FdeployError("--html: the page is larger than 256 KB", 2);
      const { ref, cfg } = target(opts);
      if (cfg.fleet) return atBalancer(ref, cfg, mode, opts.message ?? "", html);
      const r = runOnServer(cfg, "agent", "maintenance", { APP: cfg.appName, MODE: mode, MESSAGE: opts.message ?? "", HTML: html }, { args: ["--field", "message"] });
      if (r.status !== 0) throw new FdeployError(`maintenance ${mode} failed on ${cfg.server.host} (exit ${r.status}; see above)`);
    });
}

/** A fleet: the balancer answers 503 with the page for every host (its hosts keep serving its checks). */
async function atBalancer(ref: StackRef, read: AppTarget, mode: string, message: string, html: string): Promise<void> {
  if (read.fleet!.balancer === "external") {
    throw new FdeployError(`fdeploy maintenance: loadBalancer is external: put the page up at your own balancer`, 2);
  }
  const { cfg, lease } = await holdCurrent(ref, read, "maintenance");
  try {
    const lb = cfg.fleet?.balancer;
    if (!lb || lb === "external") throw new FdeployError(`fdeploy maintenance: stack ${ref.stack} has no balancer of its own any more (loadBalancer); nothing changed`, 2);
    const r = runOnServer({ appName: cfg.appName, server: lb }, "agent", "lb-maintenance", { APP: cfg.appName, MODE: mode, MESSAGE: message, HTML: html },
      { args: ["--field", "message"] });
    if (r.status !== 0) throw new FdeployError(`maintenance ${mode} failed on the balancer ${lb.host} (loadBalancer.host; exit ${r.status}; see above)`);
  } finally {
    await lease?.end();
  }
}
