// fdeploy exec -- CMD…: run a command in the live release — its venv on PATH, its environment
// file, as the app user, in the slots' sandbox — and exit with its status. fdeploy console: the
// same with a terminal, `flask shell` (or python). Nothing is printed but the command's output.
import { Command } from "commander";
import * as fs from "fs";
import { stackCommand, StackOpts, target } from "../lib/command";
import { FdeployError } from "../lib/errors";
import { hostOption, oneHost } from "../lib/hosts";
import { runOnServer } from "../lib/stack";

export function register(program: Command): void {
  hostOption(stackCommand(program, "exec", "run a command in the live release (its venv and environment, as the app user)"))
    .argument("<cmd...>", "the command and its arguments (after --), e.g. -- flask routes")
    .option("-i, --stdin", "pass this command's standard input to it (default: none)")
    .passThroughOptions()
    .action((cmd: string[], opts: StackOpts & { stdin?: boolean; host?: string }) => {
      const cfg = oneHost(target(opts).cfg, opts.host, "exec");
      const stdin = opts.stdin ? fs.readFileSync(0) : undefined;
      const r = runOnServer(cfg, "agent", "exec", { APP: cfg.appName, CMD: JSON.stringify(cmd) }, { stdin });
      process.exitCode = r.status;
    });

  hostOption(stackCommand(program, "console", "an interactive flask shell (or python) in the live release, on this terminal"))
    .action((opts: StackOpts & { host?: string }) => {
      if (!process.stdin.isTTY) throw new FdeployError("console needs a terminal; for a script use: fdeploy exec --stdin -- python", 2);
      const cfg = oneHost(target(opts).cfg, opts.host, "console");
      const r = runOnServer(cfg, "agent", "console", {}, { tty: true, args: ["--app", cfg.appName] });
      process.exitCode = r.status;
    });
}
