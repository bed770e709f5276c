// Disposable Debian test servers for TypeScript tests: a thin layer over testserver.sh. Every
// server a test process starts is stopped by stopAll(), which the e2e root hooks call after the
// suite, and on SIGINT/SIGTERM, so nothing is left running even when a test fails.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const SCRIPT = path.join(__dirname, "testserver.sh");
const started = new Set<string>();

function run(args: string[], input?: string, env?: NodeJS.ProcessEnv): string {
  return execFileSync("bash", [SCRIPT, ...args], { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"], env: env ?? process.env }).trim();
}

export interface TestServer {
  name: string;
  host: string;
  keyPath: string;
  knownHostsPath: string;
  /** The server's ed25519 host key ("ssh-ed25519 AAAA…"), as pinned in known_hosts. */
  hostKey: string;
  /** Run a shell command on the server over SSH (strict host key checking); throws on non-zero. */
  ssh(command: string, input?: string): string;
  /** Like ssh() but returns the exit status and output instead of throwing. */
  trySsh(command: string, input?: string): { status: number; stdout: string; stderr: string };
}

/** opts.docker: a server that can run Docker (testserver.sh FDEPLOY_DOCKER=1; docker.io comes with the deploy);
 * opts.image postgres: booted from the image with Debian's postgresql (a database server). */
export function startServer(name: string, octet: number, opts: { docker?: boolean; image?: "postgres" } = {}): TestServer {
  started.add(name);
  const lines = run(["up", name, String(octet), ...(opts.image ? ["--image", opts.image] : [])], undefined, opts.docker ? { ...process.env, FDEPLOY_DOCKER: "1" } : undefined).split("\n");
  const host = lines[lines.length - 1];
  const cfg = Object.fromEntries(run(["ssh-config", name]).split("\n").map((l) => l.split(/=(.*)/s).slice(0, 2)));
  const hostKey = fs.readFileSync(cfg.KNOWN_HOSTS, "utf8").split("\n")
    .map((l) => l.split(" ")).find((f) => f[0] === host)!.slice(1, 3).join(" ");
  const sshArgs = ["-i", cfg.KEY, "-o", `UserKnownHostsFile=${cfg.KNOWN_HOSTS}`, "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", `root@${host}`];
  const trySsh = (command: string, input?: string) => {
    const r = spawnSync("ssh", [...sshArgs, command], { encoding: "utf8", input });
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  };
  return {
    name, host, keyPath: cfg.KEY, knownHostsPath: cfg.KNOWN_HOSTS, hostKey,
    trySsh,
    ssh(command: string, input?: string) {
      const r = trySsh(command, input);
      if (r.status !== 0) throw new Error(`ssh ${host} '${command}' exited ${r.status}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
  };
}

/** A sudo user `deploy` (passwordless sudo, root's test key) for stacks that deploy as a non-root user. */
export function addSudoUser(server: TestServer): void {
  server.ssh([
    "id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy",
    "install -d -m 700 -o deploy -g deploy /home/deploy/.ssh",
    "install -m 600 -o deploy -g deploy /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys",
    "echo 'deploy ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy",
  ].join(" && "));
}

export function stopServer(name: string): void {
  run(["down", name]);
  started.delete(name);
}

/** Stop every server this process started; the bridge and apt proxy go when no server is left. */
export function stopAll(): void {
  for (const name of started) spawnSync("bash", [SCRIPT, "down", name], { stdio: "inherit" });
  started.clear();
  spawnSync("bash", [SCRIPT, "gc"], { stdio: "inherit" });
}

/** Download wheels for requirements files into the servers' read-only wheelhouse. */
export function addWheels(...requirements: string[]): void {
  run(["wheelhouse", ...requirements]);
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    stopAll();
    process.exit(130);
  });
}
