// Server-loss harness shared by the backup suites (backup.test.ts: Litestream; postgres-backup.test.ts:
// pgBackRest): a hard kill of a test server, a write loop that records every acknowledged row, the
// target's link down/up, a server whose disk outlives `down`.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const CACHE = process.env.FDEPLOY_CACHE || "/var/cache/fdeploy";

/** Kill a test server hard: SIGKILL to its container's PID 1 (every process in it dies at once). */
export function killHard(name: string): void {
  const dir = path.join(CACHE, "servers", "hosts", name);
  const loop = fs.readFileSync(path.join(dir, "loop.pid"), "utf8").trim();
  const nspawn = fs.readFileSync(path.join(dir, "nspawn.pid"), "utf8").trim();
  spawnSync("kill", ["-KILL", loop]);
  const leader = execFileSync("pgrep", ["-P", nspawn], { encoding: "utf8" }).trim().split("\n")[0];
  execFileSync("kill", ["-KILL", leader]);
}

/** The target's link down/up, from the host (the server's namespace). */
export function link(name: string, state: "up" | "down"): void {
  execFileSync("ip", ["-n", `fd-${name}`, "link", "set", "eth0", state]);
}

export interface Written { id: number; at: number }

/** POST notes to BASE as fast as 2 clients go until stopped; each acknowledged row with its time. */
export function startWriter(base: string) {
  const rows: Written[] = [];
  let stopped = false, failures = 0;
  const worker = async () => {
    let n = 0;
    while (!stopped) {
      try {
        const r = await fetch(`${base}/api/notes`, {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ body: `row ${n++}` }), signal: AbortSignal.timeout(3000),
        });
        if (r.status === 201) rows.push({ id: (await r.json()).id, at: Date.now() });
        else failures++;
      } catch {
        failures++;
        await new Promise((res) => setTimeout(res, 50));
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  };
  const workers = [worker(), worker()];
  return { rows, get failures() { return failures; }, async stop() { stopped = true; await Promise.all(workers); } };
}

export const SERVERS = path.join(__dirname, "../servers/testserver.sh");
export function withKeptDisk<T>(f: () => T): T {
  process.env.FDEPLOY_KEEP_DISK = "1";
  try { return f(); } finally { delete process.env.FDEPLOY_KEEP_DISK; }
}
