// What the benchmarks share (bench/bench.ts, bench/speed.ts): the Ansible playbook's command line
// and environment (bench/ansible/deploy.yml or deploy-tuned.yml with ansible-core from the bench venv), the machine's
// description, and the other test servers running beside a benchmark.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** The benchmarks' Python venv (ansible-core, matplotlib), built by bench/venv.sh. */
export const BENCH_VENV = process.env.BENCH_VENV ?? "/var/cache/fdeploy/bench-venv";
const BENCH = __dirname;

export interface AnsibleTarget { name: string; host: string; key: string; knownHosts: string }

export interface AnsiblePlaybook { cmd: string; args: string[]; cwd: string; env: NodeJS.ProcessEnv }

/** The Ansible peers: the conventional playbook and the tuned one (bench/README.md). */
export type AnsiblePeer = "deploy.yml" | "deploy-tuned.yml";

/**
 * An Ansible peer: bench/ansible/PLAYBOOK against SERVER (root, its pinned host key), deploying
 * APPDIR and MIGRATIONSDIR. Inventory, vars (a random SECRET_KEY, 0600), the tuned playbook's
 * release archive and Ansible's home and temp files go to DIR. PROJECT: where
 * components/scripts/migrate.py is.
 */
export function ansiblePlaybook(dir: string, server: AnsibleTarget, appDir: string, migrationsDir: string, project: string,
  playbook: AnsiblePeer = "deploy.yml"): AnsiblePlaybook {
  fs.mkdirSync(dir, { recursive: true });
  const inventory = path.join(dir, "inventory.ini");
  fs.writeFileSync(inventory, `[app]\n${server.name} ansible_host=${server.host} ansible_user=root ` +
    `ansible_ssh_private_key_file=${server.key} ` +
    `ansible_ssh_common_args='-o UserKnownHostsFile=${server.knownHosts} -o StrictHostKeyChecking=yes'\n`);
  const vars = path.join(dir, "vars.json");
  fs.writeFileSync(vars, JSON.stringify({
    app_src: appDir, migrations_src: migrationsDir, migrate_py: path.join(project, "components/scripts/migrate.py"),
    secret_key: crypto.randomBytes(24).toString("hex"), build_dir: path.join(dir, "build"),
  }), { mode: 0o600 });
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: path.join(BENCH, "ansible", "ansible.cfg"),
    ANSIBLE_HOME: path.join(dir, "home"),
    ANSIBLE_LOCAL_TEMP: path.join(dir, "tmp"),
    ANSIBLE_FORCE_COLOR: "0",
  };
  return { cmd: path.join(BENCH_VENV, "bin", "ansible-playbook"), args: ["-i", inventory, "-e", `@${vars}`, path.join(BENCH, "ansible", playbook)], cwd: BENCH, env };
}

/** The machine a benchmark ran on (CPUs, memory, kernel, tool versions). */
export function machine() {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8");
  const meminfo = fs.readFileSync("/proc/meminfo", "utf8");
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  const version = (cmd: string, args: string[]) => (spawnSync(cmd, args, { encoding: "utf8" }).stdout ?? "").trim().split("\n")[0];
  return {
    nproc: os.cpus().length,
    memoryGiB: Math.round((memKb / 1024 / 1024) * 10) / 10,
    cpuModel: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? "?",
    kernel: os.release(),
    node: process.version,
    pulumi: version("pulumi", ["version"]),
    ansibleCore: version(path.join(BENCH_VENV, "bin", "python"), ["-c", "import ansible.release as r; print(r.__version__)"]),
  };
}

/** Test servers of other users of this machine (e2e tests, a dev server) — they share the CPUs — except those named PREFIX*. */
export function otherServers(prefix: string): string[] {
  const dir = path.join(process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy", "servers", "hosts");
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => !n.startsWith(prefix)) : [];
}
