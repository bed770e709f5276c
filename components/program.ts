// Quick error printing for the program. Pulumi's program runner formats every error the program
// throws with util.inspect(err, {colors: true}) (cmd/run/error.js), and on Node.js 20.20 that spins
// ~14 s on a stack with node_modules frames (markNodeModules grows a string until RangeError)
// before anything is printed. So whatever the program (or a FlaskApp) throws leaves it without a
// stack: a RunError (a refused config, a missing tool: the message names the setting) as its
// message, any other error with its stack's text as the message, so a bug still says where it happened.
import { RunError } from "@pulumi/pulumi/errors";

/** E, made quick to print (see above); returned for `throw quickError(e)`. */
export function quickError(e: unknown): unknown {
  if (e instanceof Error) {
    if (!(e instanceof RunError) && e.stack) e.message = e.stack;
    e.stack = undefined;
  }
  return e;
}

/** An async program whose errors are quick to print. */
export function program<T>(body: () => Promise<T>): () => Promise<T> {
  return () => body().catch((e: unknown) => { throw quickError(e); });
}
