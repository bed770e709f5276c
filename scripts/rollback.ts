// npm run rollback -- --stack prod [--to <release id>]
//
// One-command rollback: on the stack's server, make the previous healthy release (or the one
// named) live again — no upload, no install — and bring the schema down to the version it ran
// with, after a backup (components/scripts/rollback.sh). Then it marks the activation, migration
// and health-check steps in the stack's state as tainted, so Pulumi knows the server differs
// from the program: the next plain `pulumi up` deploys the code in appDir again (roll forward).
// To stay on the old release, revert the code first (see README "Rollback").
import { arg, pulumi, runOnServer, stackConfig } from "./lib/stack-server";

function main(): number {
  const stack = arg("stack");
  const to = arg("to") ?? "";
  if (!stack) {
    console.error("usage: npm run rollback -- --stack <stack> [--to <release id>]");
    return 2;
  }
  if (to && !/^[0-9a-f]{12}$/.test(to)) {
    console.error(`--to: expected a release id (12 hex characters, see the releaseHistory output), got '${to}'`);
    return 2;
  }
  const cfg = stackConfig(stack);
  const s = cfg.server;
  console.log(`rolling back stack ${stack} on ${s.user}@${s.host}${to ? ` to ${to}` : " to the previous healthy release"}…`);
  const status = runOnServer(cfg, "rollback.sh", "create", { APP: cfg.appName, TO: to });
  if (status !== 0) {
    console.error(`rollback failed (exit ${status}); the server's live release is whatever the lines above say`);
    return 1;
  }

  // tell Pulumi the server now differs from the program
  const state = JSON.parse(pulumi(["stack", "export"], stack));
  const names = ["activation-switch", "migrations-apply", "health-probe"];
  const urns: string[] = (state.deployment.resources ?? []).map((x: any) => x.urn).filter((u: string) => names.includes(u.split("::").pop()!));
  if (urns.length) pulumi(["state", "taint", "--yes", ...urns], stack);
  console.log(`\nDone. The next plain \`pulumi up --stack ${stack}\` deploys the code in appDir again (roll forward);`);
  console.log("revert the code first to stay on the rolled-back release.");
  return 0;
}

process.exit(main());
