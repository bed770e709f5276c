// npm run purge -- --stack <stack> --confirm <appName>
//
// Deletes what `pulumi destroy` always keeps on the stack's server: the app's database and backups
// (/srv/<app>/shared), its environment file and its users (components/scripts/base.sh purge). Run
// it after `pulumi destroy`; it refuses while the app is still deployed. --confirm must repeat the
// app name: deleting a database is never a side effect of a setting.
import { arg, runOnServer, stackConfig } from "./lib/stack-server";

function main(): number {
  const stack = arg("stack");
  if (!stack) {
    console.error("usage: npm run purge -- --stack <stack> --confirm <appName>");
    return 2;
  }
  const cfg = stackConfig(stack);
  if (arg("confirm") !== cfg.appName) {
    console.error(`--confirm: repeat the app name (${cfg.appName}) to delete its database, backups and environment file on ${cfg.server.host}`);
    return 2;
  }
  console.log(`purging ${cfg.appName} on ${cfg.server.user}@${cfg.server.host}…`);
  const { status } = runOnServer(cfg, "base.sh", "purge", { APP: cfg.appName });
  if (status !== 0) console.error(`purge failed (exit ${status}); nothing was deleted unless the lines above say so`);
  return status === 0 ? 0 : 1;
}

process.exit(main());
