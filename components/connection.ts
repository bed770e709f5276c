// How every remote step reaches the server: SSH with a pinned host key (a changed key is refused),
// a private key read from a file (kept secret in state), and bounded retries so a server that is
// still booting or briefly unreachable gets a few tries before the step fails naming host:port.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { expandHome, ServerConfig } from "./config";

export type Connection = command.types.input.remote.ConnectionArgs;

export function connectionFor(server: ServerConfig): Connection {
  const keyPath = server.privateKeyPath ? expandHome(server.privateKeyPath) : undefined;
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    hostKey: server.hostKey,
    privateKey: keyPath ? pulumi.secret(fs.readFileSync(keyPath, "utf8")) : undefined,
    // without a key file: the local ssh-agent (SSH_AUTH_SOCK)
    agentSocketPath: keyPath ? undefined : process.env.SSH_AUTH_SOCK,
    dialErrorLimit: 6,
    perDialTimeout: 10,
  };
}
