// What the deploy raises when it refuses on purpose (bad config, a tool missing on this machine…):
// a RunError, which Pulumi prints as just its message — the message names the setting and the form.
import { RunError } from "@pulumi/pulumi/errors";

export class Refusal extends RunError {
  constructor(message: string) {
    super(message);
    // No stack. Pulumi's program runner formats every program error with util.inspect(err), and on
    // Node.js 20.20 that spins ~14 s on a stack with node_modules frames (markNodeModules grows a
    // string until RangeError) before the refusal is printed. A RunError's stack is never shown.
    this.stack = undefined;
  }
}
