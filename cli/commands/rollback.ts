// fdeploy rollback [--to RELEASE] | --forward  (also: npm run rollback -- …)
//
// A rollback is a `pulumi up` with the release pinned to one the server still keeps: it asks the
// server where to go (components/scripts/rollback.sh plan: one step back through the healthy
// history, or --to), and runs `pulumi up --config release=<it>` (which sets the stack's `release`
// setting, then deploys). That switches
// to it with the stack's strategy and health check (nothing uploaded or installed), then brings the
// schema down to the version it ran with (after a backup). State, outputs and preview stay true:
// the pinned release is what the program deploys until `--forward` removes the pin.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { pulumi, runOnServer } from "../lib/stack";

export function register(program: Command): void {
  stackCommand(program, "rollback", "switch to an earlier kept release (a pulumi up with the release pinned)")
    .option("--to <release>", "this kept release (12 hex characters; see fdeploy releases) instead of one step back")
    .option("--forward", "remove the pin: deploy appDir's release again")
    .action((opts: StackOpts & { to?: string; forward?: boolean }) => {
      const to = opts.to ?? "";
      if (to && !/^[0-9a-f]{12}$/.test(to)) {
        throw new FdeployError(`--to: expected a release id (12 hex characters, see fdeploy releases), got '${to}'`, 2);
      }
      const { ref, cfg } = target(opts);
      const stack = ref.stack;
      if (opts.forward) {
        if (!cfg.release) throw new FdeployError(`stack ${stack} has no pinned release (the \`release\` setting): pulumi up deploys appDir already`, 2);
        console.log(`rolling forward: unpinning release ${cfg.release}, deploying appDir's release on stack ${stack}…`);
        pulumi(ref, ["config", "rm", "release"]);
        pulumi(ref, ["up", "--yes", "--skip-preview"], { inherit: true });
        return;
      }
      const s = cfg.server;
      const plan = runOnServer(cfg, "rollback.sh", "plan", { APP: cfg.appName, TO: to }, { capture: true });
      const line = plan.stdout.trim().split("\n").pop() ?? "";
      if (plan.status !== 0 || !line.startsWith("{")) throw new FdeployError(`rollback: nothing changed on ${s.user}@${s.host} (the lines above say why)`);
      const t: { release: string; schema: number; live: string } = JSON.parse(line);
      if (!/^[0-9a-f]{12}$/.test(t.release)) throw new FdeployError(`rollback: the server named no release to go to (${line}); nothing changed`);
      console.log(`rolling back stack ${stack} on ${s.user}@${s.host}: ${t.live} -> ${t.release} (schema version ${t.schema})`);
      try {
        // one CLI start: `up --config` saves the pin to the stack's config first (also when the up fails), then deploys
        pulumi(ref, ["up", "--yes", "--skip-preview", "--config", `release=${t.release}`], { inherit: true });
      } catch {
        throw new FdeployError(`The rollback's pulumi up failed; what serves is what the lines above say. The stack still pins release ` +
          `${t.release}: \`pulumi up\` retries, \`fdeploy rollback --stack ${stack} --forward\` returns to appDir's release.`);
      }
      console.log(`\nRelease ${t.release} is live and pinned by the stack's \`release\` setting; another rollback steps further back,`);
      console.log(`\`fdeploy rollback --stack ${stack} --forward\` deploys appDir's release again.`);
    });
}
