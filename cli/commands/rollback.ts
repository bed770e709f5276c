// fdeploy rollback [--to RELEASE] | --forward  (also: npm run rollback -- …)
//
// A rollback is a `pulumi up` with the app's release pinned to one the server still keeps: it asks the
// server where to go (the server agent's rollback-plan: one step back through the healthy
// history, or --to), and runs `pulumi up --config <its pin key>=<it>` (which sets the app's release pin in
// the stack's config — `release` for the app built from stack config, `apps.<name>.release` for another
// FlaskApp: components/config/pin.ts — then deploys). That switches
// to it with the stack's strategy and health check (nothing uploaded or installed), then brings the
// schema down to the version it ran with (after a backup). State, outputs and preview stay true:
// the pinned release is what the program deploys until `--forward` removes the pin.
// Before it runs, the server measures what the down migrations would drop (the agent's
// rollback-loss, on a copy of the database); a rollback that loses data asks first (--yes: don't ask).
// On a fleet it holds every host's deploy lease from before the plan to its up (cli/lib/fleet-lease.ts), which it
// hands over to: an up running meanwhile is waited for, and nothing runs between the plan and the switch.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { FleetLease, holdCurrent } from "../lib/fleet-lease";
import { describeLoss, RollbackLoss, Undo } from "../lib/rollback-loss";
import { AppTarget, appTargetAsync, configGet, Connection, connectionFromFile, pulumi, runOnServer, sameConnection, StackRef, stackRef } from "../lib/stack";
import * as readline from "readline";

export function register(program: Command): void {
  stackCommand(program, "rollback", "switch to an earlier kept release (a pulumi up with the release pinned)")
    .option("--to <release>", "this kept release (12 hex characters; see fdeploy releases) instead of one step back")
    .option("--forward", "remove the pin: deploy appDir's release again")
    .option("--yes", "roll back even when its down migrations drop data (they are listed; their undo is taken first)")
    .action(async (opts: StackOpts & { to?: string; forward?: boolean; yes?: boolean }) => {
      const to = opts.to ?? "";
      if (to && !/^[0-9a-f]{12}$/.test(to)) {
        throw new FdeployError(`--to: expected a release id (12 hex characters, see fdeploy releases), got '${to}'`, 2);
      }
      if (opts.forward) {
        const { ref, cfg } = target(opts);
        const stack = ref.stack;
        const pinned = configGet(ref, cfg.releaseKey);
        if (!pinned) throw new FdeployError(`app ${cfg.name} of stack ${stack} has no pinned release (${cfg.releaseKey}): pulumi up deploys appDir already`, 2);
        await underLease(await holdCurrent(ref, cfg, "rollback"), async (_, lease) => {
          console.log(`rolling forward: unpinning release ${pinned} (${cfg.releaseKey}), deploying appDir's release on stack ${stack}…`);
          pulumi(ref, ["config", "rm", "--path", cfg.releaseKey]);
          await lease?.handover();
          pulumi(ref, ["up", "--yes", "--skip-preview"], { inherit: true });
        });
        return;
      }
      const ref = stackRef(opts);
      const stack = ref.stack;
      const again = `fdeploy rollback --stack ${stack}${ref.app ? ` --app ${ref.app}` : ""}`;
      // The plan changes nothing: it is asked while `pulumi stack export` (a CLI start, 0.4 s) runs, of the server the
      // stack's config file names, and used only if the app found in the state is the same (else asked again).
      const config = appTargetAsync(ref);
      config.catch(() => undefined);   // its error is thrown below
      const fromFile = connectionFromFile(ref);
      const ask = (conn: Connection) =>
        runOnServer(conn, "agent", "rollback-plan", { APP: conn.appName, TO: to }, { capture: true, keepStderr: true });
      let early: ReturnType<typeof ask> | undefined;
      try {
        early = fromFile ? ask(fromFile) : undefined;
      } catch {
        early = undefined;   // asked again below, where its error counts
      }
      // a fleet: the app and its plan are read again once its lease is held (an up it waited for may have changed them)
      await underLease(await holdCurrent(ref, await config, "rollback"), (cfg, lease) =>
        rollBack(ref, cfg, lease, !lease && early && fromFile && sameConnection(fromFile, cfg) ? early : ask(cfg), to, !!opts.yes, again));
    });
}

/** WORK on the app CFG while its fleet's LEASE is held (if any); the lease given up after it, whatever happened. */
async function underLease({ cfg, lease }: { cfg: AppTarget; lease?: FleetLease }, work: (cfg: AppTarget, lease?: FleetLease) => Promise<void>): Promise<void> {
  try {
    await work(cfg, lease);
  } finally {
    await lease?.end();
  }
}

/** The rollback once its plan is known (PLAN: the server's answer): the loss asked about, then the up (after the
 * fleet's LEASE is handed over to it). */
async function rollBack(ref: StackRef, cfg: AppTarget, lease: FleetLease | undefined, plan: ReturnType<typeof runOnServer>, to: string,
  yes: boolean, again: string): Promise<void> {
  const stack = ref.stack;
  const s = cfg.server;
  if (plan.stderr) process.stderr.write(plan.stderr);
  const line = plan.stdout.trim().split("\n").pop() ?? "";
  if (plan.status !== 0 || !line.startsWith("{")) throw new FdeployError(`fdeploy rollback: nothing changed on ${s.user}@${s.host} (the lines above say why)`);
  const t: { release: string; schema: number; live: string } = JSON.parse(line);
  if (!/^[0-9a-f]{12}$/.test(t.release)) throw new FdeployError(`fdeploy rollback: the server named no release to go to (${line}); nothing changed`);
  await confirmLoss(cfg, t.schema, yes, again, { replica: cfg.beforeChange === "replica", restore: `--stack ${stack}${ref.app ? ` --app ${ref.app}` : ""}` });
  console.log(`rolling back app ${cfg.name} of stack ${stack} on ${s.user}@${s.host}: ${t.live} -> ${t.release} (schema version ${t.schema})`);
  await lease?.handover();
  try {
    // one CLI start: `up --config` saves the pin to the stack's config first (also when the up fails), then deploys
    pulumi(ref, ["up", "--yes", "--skip-preview", "--config-path", "--config", `${cfg.releaseKey}=${t.release}`], { inherit: true });
  } catch {
    throw new FdeployError(`the rollback's pulumi up failed; the stack pins release ${t.release} (${cfg.releaseKey}): \`pulumi up\` retries, ` +
      `\`${again} --forward\` unpins\nwhat serves is what the lines above say`);
  }
  console.log(`\nRelease ${t.release} is live and pinned by the stack's \`${cfg.releaseKey}\` setting; another rollback steps further back,`);
  console.log(`\`${again} --forward\` deploys appDir's release again.`);
}

/** Prints what the rollback's down migrations drop; when they lose data, asks (a terminal) or
 * stops before anything changed (no terminal, no --yes). */
async function confirmLoss(cfg: Connection, schema: number, yes: boolean, again: string, undo: Undo): Promise<void> {
  const r = runOnServer(cfg, "agent", "rollback-loss", { APP: cfg.appName, TO: schema }, { capture: true, keepStderr: true });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) {
    if (r.stderr) process.stderr.write(r.stderr);
    if (yes) return;
    throw new FdeployError(`rollback: stopped before anything changed: what its down migrations drop is unknown; ${again} --yes skips that check\n` +
      `the server could not tell what the down migrations to schema version ${schema} drop (the lines above say why)`, 2);
  }
  const { lines, losesData } = describeLoss(JSON.parse(line) as RollbackLoss, undo);
  for (const l of lines) console.log(l);
  if (!losesData || yes) return;
  if (process.stdin.isTTY && process.stdout.isTTY) {
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
    const answer = await new Promise<string>((resolve) => rl.question("Roll back and drop that data? Type yes to go on: ", resolve));
    rl.close();
    if (answer.trim() === "yes") return;
  }
  throw new FdeployError(`rollback: stopped before anything changed: its down migrations drop the data listed above; to go on: ` +
    `${again} --yes\n(or deploy a fix forward instead)`, 2);
}
