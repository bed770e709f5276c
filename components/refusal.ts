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

/**
 * The program as index.ts exports it: whatever it throws reaches Pulumi's runner without a stack to
 * format (see above) — a RunError (a Refusal, the SDK's own) as its message, any other error with
 * its stack's text as the message, so a bug still says where it happened.
 */
export function program<T>(body: () => Promise<T>): () => Promise<T> {
  return () => body().catch((e: unknown) => {
    if (e instanceof Error) {
      if (!(e instanceof RunError) && e.stack) e.message = e.stack;
      e.stack = undefined;
    }
    throw e;
  });
}
