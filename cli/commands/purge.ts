// fdeploy purge --confirm <appName>  (also: npm run purge -- …)
//
// Deletes what `pulumi destroy` always keeps on the stack's server: the app's database and backups
// (/srv/<app>/shared), its environment file and its users (the server agent's base-purge). Run
// it after `pulumi destroy`; it refuses while the app is still deployed. --confirm must repeat the
// app name: deleting a database is never a side effect of a setting.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { runOnServer } from "../lib/stack";

export function register(program: Command): void {
  stackCommand(program, "purge", "after pulumi destroy: delete the app's database, backups, environment file and users")
    .option("--confirm <appName>", "repeat the app name")
    .action((opts: StackOpts & { confirm?: string }) => {
      const { cfg } = target(opts);
      if (opts.confirm !== cfg.appName) {
        throw new FdeployError(`--confirm: repeat the app name (${cfg.appName}) to delete its database, backups and environment file on ${cfg.server.host}`, 2);
      }
      console.log(`purging ${cfg.appName} on ${cfg.server.user}@${cfg.server.host}…`);
      const { status } = runOnServer(cfg, "agent", "base-purge", { APP: cfg.appName }, { args: ["--field", "message"] });
      if (status !== 0) throw new FdeployError(`fdeploy purge failed (exit ${status}); nothing was deleted unless the lines above say so`);
    });
}
