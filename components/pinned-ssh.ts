// Commands on a stack's server outside `pulumi up` (rollback, purge, the ServerState resource) with
// the system's ssh, trusting only the stack's pinned host key, like every remote step does.
// Self-contained (its modules are required inside): the ServerState dynamic provider, whose code
// Pulumi serializes, calls it too.

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** The pinned host key, "ssh-ed25519 AAAA…". */
  hostKey: string;
  /** A key file; without one, ssh uses the agent (SSH_AUTH_SOCK). */
  privateKeyPath?: string;
}

/**
 * Run COMMAND on TARGET as root (`sudo -n` for another SSH user) with INPUT on stdin; `inherit`
 * sends its output to this terminal instead of returning it; `tty` gives it this terminal (ssh -t).
 */
export function pinnedSsh(target: SshTarget, command: string,
  opts: { input: string | Buffer; inherit?: boolean; tty?: boolean; timeoutMs?: number }):
  { status: number | null; stdout: string; stderr: string } {
  const { spawnSync } = require("child_process");
  const fs = require("fs");
  const os = require("os");
  const path = require("path");
  const s = target;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fdeploy-ssh-"));
  try {
    const knownHosts = path.join(tmp, "known_hosts");
    fs.writeFileSync(knownHosts, `${s.port === 22 ? s.host : `[${s.host}]:${s.port}`} ${s.hostKey.split(" ").slice(0, 2).join(" ")}\n`);
    const key = s.privateKeyPath ? ["-i", s.privateKeyPath.replace(/^~\//, `${os.homedir()}/`)] : [];
    const r = spawnSync("ssh", ["-p", String(s.port), "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes",
      "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "LogLevel=ERROR", ...(opts.tty ? ["-t"] : []), ...key, `${s.user}@${s.host}`,
      `${s.user === "root" ? "" : "sudo -n "}${command}`],
      { input: opts.input, encoding: "utf8", timeout: opts.timeoutMs, stdio: opts.tty ? "inherit" : opts.inherit ? ["pipe", "inherit", "inherit"] : "pipe" });
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
