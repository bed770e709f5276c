// How every remote step reaches the server, as the official command plugin (pulumi-resource-command
// 1.2.1, remote/connection.go) does it: SSH with a pinned host key (a changed key is refused), a
// private key read from a file (kept secret in state) and/or the local ssh-agent, and bounded
// dial retries so a server that is rebooting or briefly unreachable gets time before a step fails.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { expandHome, NAMESPACE, ServerConfig } from "./config";

export type Connection = command.types.input.remote.ConnectionArgs;

/**
 * The plugin retries every failed dial (dialErrorLimit N = N+1 attempts, 100 ms backoff ×1.5 up to
 * 5 s): 10 gives about 11 s of waiting plus the connects, enough for a test server's reboot or a
 * dropped link, while a wrong host key (also retried) still fails within about half a minute.
 */
export const DIAL_ERROR_LIMIT = 10;
/** Bounds only the TCP connect of each attempt. */
export const PER_DIAL_TIMEOUT_SECONDS = 10;

export function connectionFor(server: ServerConfig, env: NodeJS.ProcessEnv = process.env): Connection {
  const keyPath = server.privateKeyPath ? expandHome(server.privateKeyPath) : undefined;
  checkAgent(env.SSH_AUTH_SOCK, keyPath !== undefined);
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    hostKey: server.hostKey,
    privateKey: keyPath ? pulumi.secret(fs.readFileSync(keyPath, "utf8")) : undefined,
    // No agentSocketPath: the plugin then uses its own SSH_AUTH_SOCK. A path in the inputs would be
    // stored in state, and every new login (a new socket path) would re-run every step.
    dialErrorLimit: DIAL_ERROR_LIMIT,
    perDialTimeout: PER_DIAL_TIMEOUT_SECONDS,
  };
}

/**
 * The plugin dials SSH_AUTH_SOCK whenever it is set, and an unreachable socket fails every step,
 * even with a private key file. Say so before any step runs, naming what to do.
 */
export function checkAgent(sock: string | undefined, haveKeyFile: boolean): void {
  if (!sock) {
    if (haveKeyFile) return;
    throw new pulumi.RunError(`${NAMESPACE}:server.privateKeyPath: not set and no ssh-agent (SSH_AUTH_SOCK is empty); ` +
      "set it to a key file, or start an agent and ssh-add your key");
  }
  const problem = agentProblem(sock);
  if (problem) {
    throw new pulumi.RunError(`SSH_AUTH_SOCK=${sock}: ${problem}; start the agent (eval "$(ssh-agent)"; ssh-add) or unset SSH_AUTH_SOCK\n` +
      "(the Pulumi command plugin uses this agent for every SSH connection, even with server.privateKeyPath set)");
  }
}

/** Why the agent socket cannot be used, or undefined when an agent answers there. */
function agentProblem(sock: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(sock);
  } catch {
    return "no such socket";
  }
  if (!st.isSocket()) return "not a socket";
  // ssh-add -l: exit 0 (keys) or 1 (no keys) means an agent answered; 2 means none could be reached.
  const r = spawnSync("ssh-add", ["-l"], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: "ignore", timeout: 5000 });
  if (r.error) return undefined; // no ssh-add on this machine: the stat check above is all we can do
  return r.status === 2 ? "no ssh-agent answers on this socket (a stale socket of an agent that has exited)" : undefined;
}
