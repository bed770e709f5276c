// Commands on a stack's server outside the remote steps (fdeploy; the ServerState and
// CertificateState resources) with the system's ssh, trusting only the stack's pinned host key, like
// every remote step does. Self-contained (its modules are required inside): the dynamic providers,
// whose code Pulumi serializes, call it too.

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** The pinned host key, "ssh-ed25519 AAAA…". */
  hostKey: string;
  /** A key file; without one, ssh uses the agent (SSH_AUTH_SOCK). */
  privateKeyPath?: string;
}

/** The known_hosts line ssh checks the server against (its pinned hostKey; a port other than 22 in brackets). */
export function knownHostsLine(server: Pick<SshTarget, "host" | "port" | "hostKey">): string {
  const name = server.port === 22 ? server.host : `[${server.host}]:${server.port}`;
  return `${name} ${server.hostKey.split(" ").slice(0, 2).join(" ")}\n`;
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
    fs.writeFileSync(knownHosts, knownHostsLine(s));
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

/**
 * SCRIPT VERB (SCRIPT "agent": the server agent) from the deploy's scripts folder on TARGET, with {APP} on stdin: the JSON object its
 * last line of output holds (what the dynamic resources ServerState and CertificateState read and
 * repair with). Throws with the script's last lines of errors when it fails.
 */
export function scriptReport(target: SshTarget, scriptsDir: string, script: string, verb: string, app: string): Record<string, any> {
  const program = script === "agent" ? "python3 -I -B" : "bash";   // "agent": the server agent's VERB
  const r = pinnedSsh(target, `${program} ${scriptsDir}/${script} ${verb}`, { input: JSON.stringify({ APP: app }), timeoutMs: 600000 });
  const last = r.stdout.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !last.startsWith("{")) {
    throw new Error(`components/scripts/${script} ${verb} on ${target.user}@${target.host} failed (exit ${r.status}):\n${r.stderr.trim().split("\n").slice(-30).join("\n")}`);
  }
  return JSON.parse(last);
}
