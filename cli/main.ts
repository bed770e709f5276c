// fdeploy — day-2 operations on a deployed app, so nobody needs to SSH in by hand. One small file
// per command in cli/commands/; each acts on an app of a stack (a FlaskApp its state holds, read with
// the user's login and secrets provider in the user's project folder) through its pinned host key.
import { Command, CommanderError } from "commander";
import { FdeployError } from "./lib/errors";

const COMMANDS = ["status", "releases", "logs", "exec", "rollback", "purge", "maintenance", "lock", "backup", "jobs"];
COMMANDS.push("db");   // db migrate-to-postgres (README "PostgreSQL")
COMMANDS.push("preview-summary");   // a CI job's summary of `pulumi preview --json` (examples/ci/)

export async function main(argv: string[]): Promise<number> {
  const program = new Command("fdeploy")
    .description("Operate a Flask app deployed by flask-deploy (every command: --stack <name>, --app <name>, --help)")
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  for (const c of COMMANDS) require(`./commands/${c}`).register(program);
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e: any) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof FdeployError) {
      process.stderr.write(`fdeploy: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}

if (require.main === module) main(process.argv).then((code) => process.exit(code));
