import { RunError } from "@pulumi/pulumi/errors";

/** A RunError: Pulumi prints just the message (which names the key and the expected form), no stack trace. */
export class ConfigError extends RunError {
  constructor(problems: string[]) {
    super(`invalid stack configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}
