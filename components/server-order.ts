// A fleet host's resources are named by its place in `servers` (the second's end in -h2 …). Removing the
// last servers deletes theirs (the balancer drains each first, then its app is stopped: README "Scale out"),
// but a server moved to another place would have its old place's resources deleted on it: its app stopped
// and its releases removed while it stays in the fleet. serverOrderProblem() refuses that at preview, from
// the `server` output of the stack's last up ("user@host:port, …", servers order); a program that does not
// export it is not checked.
import { NAMESPACE } from "./config";

/** The hosts of a `server` output, in order ([] when there is none). */
export function previousHosts(server: unknown): string[] {
  if (typeof server !== "string" || server === "") return [];
  return server.split(", ").map((s) => s.slice(s.lastIndexOf("@") + 1, s.lastIndexOf(":") > s.lastIndexOf("@") ? s.lastIndexOf(":") : undefined));
}

/** Why NOW (the hosts of `servers`) cannot follow PREVIOUS: a host that changed places; undefined when none did. */
export function serverOrderProblem(previous: string[], now: string[]): string | undefined {
  for (const [i, host] of previous.entries()) {
    const j = now.indexOf(host);
    if (j >= 0 && j !== i) {
      return `${NAMESPACE}:servers: ${host} moved from servers[${i}] to servers[${j}]; expected each server to keep its place: remove servers from the end\n` +
        `    (a server's resources are named by its place: a move would stop the app on it; README "Scale out")`;
    }
  }
  return undefined;
}
