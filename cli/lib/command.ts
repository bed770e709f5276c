// What every fdeploy command shares: --stack, --app and --config-file, and one way to act on the app's
// server (found in the stack's state, then SSH with the pinned host key).
import { Command } from "commander";
import { AppTarget, appTarget, StackRef, stackRef } from "./stack";

export interface StackOpts {
  stack?: string;
  app?: string;
  configFile?: string;
  json?: boolean;
}

/** A subcommand of PARENT with the options every command takes. */
export function stackCommand(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description)
    .option("-s, --stack <name>", "the Pulumi stack (default: the selected one)")
    .option("-a, --app <name>", "the FlaskApp (its name in the program, or its appName) when the stack holds several")
    .option("--config-file <path>", "the stack's config file, if not Pulumi.<stack>.yaml");
}

/** The stack and the app it acts on. */
export function target(opts: StackOpts): { ref: StackRef; cfg: AppTarget } {
  const ref = stackRef(opts);
  return { ref, cfg: appTarget(ref) };
}
