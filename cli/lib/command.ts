// What every fdeploy command shares: --stack and --config-file, and one way to act on the stack's
// server (its config validated first, then SSH with the pinned host key).
import { Command } from "commander";
import { DeployConfig } from "../../components/config";
import { StackRef, stackConfig, stackRef } from "./stack";

export interface StackOpts {
  stack?: string;
  configFile?: string;
  json?: boolean;
}

/** A subcommand of PARENT with the options every command takes. */
export function stackCommand(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description)
    .option("-s, --stack <name>", "the Pulumi stack (default: the selected one)")
    .option("--config-file <path>", "the stack's config file, if not Pulumi.<stack>.yaml");
}

/** The stack and its validated config. */
export function target(opts: StackOpts): { ref: StackRef; cfg: DeployConfig } {
  const ref = stackRef(opts);
  return { ref, cfg: stackConfig(ref) };
}
