// fdeploy db migrate-to-postgres [--back]: the app's data from its SQLite file into its PostgreSQL
// database (the stack's `database` setting), in one command that runs the `pulumi up` switching
// DATABASE_URL, with the app in maintenance mode throughout (fdeploy maintenance's page):
//   1. the server records the move pending (agent db-move-start; refused unless the app runs on SQLite),
//   2. maintenance on, 3. pulumi up: before its migrations, the server copies the data (db_copy.py: the
//   SQLite schema and every row, row counts compared, one transaction), then the switch puts the
//   PostgreSQL DATABASE_URL in force, 4. the counts per table are printed (db-move-finish), maintenance off.
// --back: the same the other way: `database` removed from the stack's config, the up copies the
// PostgreSQL rows back into the SQLite file (a backup of it first) and switches to it.
import { Command } from "commander";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { configGet, pulumi, runOnServer, serverResult } from "../lib/stack";

type Counts = Record<string, { sqlite: number; postgres: number }>;

export function register(program: Command): void {
  const db = program.command("db").description("the app's database");
  stackCommand(db, "migrate-to-postgres", "move the app's SQLite data into its PostgreSQL database (flask-deploy:database) and switch to it; --back: to SQLite again")
    .option("--back", "copy the PostgreSQL data back into the SQLite file and switch to it (removes flask-deploy:database)")
    .action((opts: StackOpts & { back?: boolean }) => {
      const { ref, cfg } = target(opts);
      const key = cfg.releaseKey.replace(/release$/, "database");
      const where = `app ${cfg.appName} on ${cfg.server.host}`;
      const again = `fdeploy db migrate-to-postgres --stack ${ref.stack}${ref.app ? ` --app ${ref.app}` : ""}${opts.back ? " --back" : ""}`;
      if (!opts.back && !configGet(ref, key)) {
        throw new FdeployError(`${key} is not set (the database setting): set the PostgreSQL database first, then run ${again}; nothing changed\n` +
          `(README "PostgreSQL": pulumi config set --path database.engine postgres, database.host, and --secret databasePassword, or --secret database.url)`, 2);
      }
      const direction = opts.back ? "to-sqlite" : "to-postgres";
      const start = runOnServer(cfg, "agent", "db-move-start", { APP: cfg.appName, DIRECTION: direction }, { capture: true });
      if (start.status !== 0) throw new FdeployError(`fdeploy db migrate-to-postgres: nothing changed on ${where} (the lines above say why)`);
      const m = runOnServer(cfg, "agent", "maintenance", { APP: cfg.appName, MODE: "on", MESSAGE: "Moving to a new database: back in a few minutes.", HTML: "" },
        { capture: true });
      if (m.status !== 0) throw new FdeployError(`maintenance on failed on ${cfg.server.host}; nothing was copied (the move stays pending: ${again} goes on)`);
      console.log(`${where}: maintenance on; the up copies the data ${opts.back ? "back into SQLite" : "into PostgreSQL"} before it switches`);
      if (opts.back && configGet(ref, key)) pulumi(ref, ["config", "rm", "--path", key]);
      try {
        pulumi(ref, ["up", "--yes", "--skip-preview"], { inherit: true });
      } catch {
        throw new FdeployError(`the up failed: fix what the lines above say and run ${again} again, or fdeploy maintenance off to serve meanwhile\n` +
          `The live release keeps serving on the database it had, behind the maintenance page; the move stays pending (a copy already made is kept).`);
      }
      const done = runOnServer(cfg, "agent", "db-move-finish", { APP: cfg.appName }, { capture: true });
      if (done.status !== 0) throw new FdeployError(`the up finished but the move did not go live on ${where}: run fdeploy db migrate-to-postgres again once the lines above are fixed\n` +
        `Maintenance stays on: ${again}`);
      const r: { tables: Counts; skipped: string[] } = serverResult(done.stdout);
      for (const [t, c] of Object.entries(r.tables)) console.log(`  ${t}: ${c.sqlite} rows in SQLite, ${c.postgres} in PostgreSQL`);
      for (const s of r.skipped) console.log(`  not copied: ${s}`);
      const off = runOnServer(cfg, "agent", "maintenance", { APP: cfg.appName, MODE: "off", MESSAGE: "", HTML: "" }, { capture: true });
      if (off.status !== 0) throw new FdeployError(`the move is done, but maintenance off failed on ${cfg.server.host}: fdeploy maintenance off`);
      console.log(`${where} runs on ${opts.back ? "SQLite" : "PostgreSQL"}; row counts equal in every table; maintenance off` +
        (opts.back ? ` (${key} removed from the stack's config)` : ""));
    });
}
