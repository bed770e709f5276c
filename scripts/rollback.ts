// npm run rollback -- --stack prod [--to <release id>]     roll back
// npm run rollback -- --stack prod --forward               deploy appDir's release again
//
// A rollback is a `pulumi up` with the release pinned to one the server still keeps: it asks the
// server where to go (components/scripts/rollback.sh plan: one step back through the healthy
// history, or --to), sets the stack's `release` setting to it, and runs `pulumi up`. That switches
// to it with the stack's strategy and health check (nothing uploaded or installed), then brings the
// schema down to the version it ran with (after a backup). State, outputs and preview stay true:
// the pinned release is what the program deploys until `--forward` removes the pin.
import { arg, pulumi, runOnServer, stackConfig } from "./lib/stack-server";

function up(stack: string): number {
  try {
    pulumi(["up", "--yes", "--skip-preview"], stack, { inherit: true });
    return 0;
  } catch {
    return 1;
  }
}

function main(): number {
  const stack = arg("stack");
  const to = arg("to") ?? "";
  if (!stack) {
    console.error("usage: npm run rollback -- --stack <stack> [--to <release id> | --forward]");
    return 2;
  }
  if (to && !/^[0-9a-f]{12}$/.test(to)) {
    console.error(`--to: expected a release id (12 hex characters, see the releaseHistory output), got '${to}'`);
    return 2;
  }
  const cfg = stackConfig(stack);
  if (process.argv.includes("--forward")) {
    if (!cfg.release) {
      console.error(`stack ${stack} has no pinned release (the \`release\` setting): pulumi up deploys appDir already`);
      return 2;
    }
    console.log(`rolling forward: unpinning release ${cfg.release}, deploying appDir's release on stack ${stack}…`);
    pulumi(["config", "rm", "release"], stack);
    return up(stack);
  }

  const s = cfg.server;
  const plan = runOnServer(cfg, "rollback.sh", "plan", { APP: cfg.appName, TO: to }, { capture: true });
  const line = plan.stdout.trim().split("\n").pop() ?? "";
  if (plan.status !== 0 || !line.startsWith("{")) {
    console.error(`rollback: nothing changed on ${s.user}@${s.host} (the lines above say why)`);
    return 1;
  }
  const target: { release: string; schema: number; live: string } = JSON.parse(line);
  console.log(`rolling back stack ${stack} on ${s.user}@${s.host}: ${target.live} -> ${target.release} (schema version ${target.schema})`);
  pulumi(["config", "set", "release"], stack, { input: target.release });
  if (up(stack) !== 0) {
    console.error(`\nThe rollback's pulumi up failed; what serves is what the lines above say. The stack still pins release ` +
      `${target.release}: \`pulumi up\` retries, \`npm run rollback -- --stack ${stack} --forward\` returns to appDir's release.`);
    return 1;
  }
  console.log(`\nRelease ${target.release} is live and pinned by the stack's \`release\` setting; another rollback steps further back,`);
  console.log(`\`npm run rollback -- --stack ${stack} --forward\` deploys appDir's release again.`);
  return 0;
}

process.exit(main());
