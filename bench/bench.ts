// bench/bench.ts — the downtime benchmark's driver (run by bench/run.sh, which prepares the
// toolchain, the Python venv, the wheelhouse and a snapshot of the project, and tears the servers
// down whatever happens). See bench/README.md for what is measured and how.
//
//   node -r ts-node/register/transpile-only bench/bench.ts --project DIR --work DIR --out raw.json
//     [--deploys 10] [--rollbacks 3] [--rate 50] [--connections 4] [--only restart,rolling,blue-green,canary,ansible,ansible-tuned,fleet]
//     [--merge raw.json]
//
// For each Pulumi strategy (restart, rolling, blue-green, canary) and for the two Ansible playbooks
// (conventional deploy.yml, tuned deploy-tuned.yml): a fresh
// test server, one initial deploy (not measured), then K deploys under load, each with a code
// change (every 3rd also a dependency change, every 3rd from the 2nd a new migration). For the
// Pulumi strategies also `npm run rollback` (timed) followed by its roll-forward (`--forward`), at
// least --rollbacks times. Canary also deploys, last, a release that answers 500 to 30 % of real
// requests: it must abort at its first step, and the failed requests users saw are counted. `fleet`: the same
// deploys and rollbacks to 3 app servers behind an HAProxy balancer, the data on a PostgreSQL server (the load
// goes through the balancer; each app server is checked after every step).
// --merge: the targets run now replace those of an earlier run's raw.json, the others are kept
// (each target records when and from which commit it ran).
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isolatedEnv, stackArgv } from "../tests/e2e/pulumi";
import { AnsiblePeer, ansiblePlaybook, machine, otherServers as otherServersThan } from "./common";
import { DEP_STEPS } from "./deps";

// ------------------------------------------------------------------------------------ arguments
function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) throw new Error(`--${name} is required`);
  return def;
}
const PROJECT = path.resolve(arg("project"));
const WORK = path.resolve(arg("work"));
const OUT = path.resolve(arg("out"));
const K = Number(arg("deploys", "10"));
const ROLLBACKS = Number(arg("rollbacks", "3"));
const RATE = Number(arg("rate", "50"));
const CONNECTIONS = Number(arg("connections", "4"));
const LOAD_PATHS = "/,/health";
const REQUEST_TIMEOUT_S = 10;
const ONLY = arg("only", "restart,rolling,blue-green,canary,ansible,ansible-tuned,fleet").split(",");
const MERGE = arg("merge", "");
const BENCH = __dirname;
const ROOT = path.resolve(BENCH, "..");   // node_modules (ts-node) for the load generator
const TESTSERVER = path.join(PROJECT, "tests/servers/testserver.sh");
const STEP_TIMEOUT_S = 900;                 // any single deploy/rollback is killed after this
if (!Number.isInteger(K) || K < 1 || K > 100) throw new Error("--deploys: expected 1..100");

const DEP_NAMES = [...new Set(DEP_STEPS.map((s) => s.split("==")[0]))];

// docker-*: runtime docker (README "Docker runtime") on a server that can run Docker, one at a time
// on the same address; the base image is the harness's (testserver.sh docker_args)
// ansible-tuned: bench/ansible/deploy-tuned.yml, the careful operator's playbook (bench/README.md)
// fleet: three app servers behind an HAProxy balancer and a PostgreSQL server, all managed by the stack (README
// "Scale out"); `server` is the balancer, where the load and the checks through it go
interface Fleet { apps: [string, number][]; database: [string, number] }
const TARGETS: { id: string; kind: "pulumi" | "ansible"; server: string; octet: number; strategy?: string; docker?: boolean;
  playbook?: AnsiblePeer; fleet?: Fleet }[] = [
  { id: "restart", kind: "pulumi", server: "bench-rst", octet: 70 },
  { id: "rolling", kind: "pulumi", server: "bench-roll", octet: 71 },
  { id: "blue-green", kind: "pulumi", server: "bench-bg", octet: 72 },
  { id: "canary", kind: "pulumi", server: "bench-cnry", octet: 75 },
  { id: "ansible", kind: "ansible", server: "bench-ans", octet: 73 },
  { id: "ansible-tuned", kind: "ansible", server: "ha-tuned", octet: 240, playbook: "deploy-tuned.yml" },
  { id: "docker-blue-green", kind: "pulumi", server: "bench-dkr", octet: 76, strategy: "blue-green", docker: true },
  { id: "docker-rolling", kind: "pulumi", server: "bench-dkr", octet: 76, strategy: "rolling", docker: true },
  { id: "fleet", kind: "pulumi", server: "bf-lb", octet: 238, strategy: "rolling",
    fleet: { apps: [["bf-app1", 236], ["bf-app2", 237], ["bf-app3", 239]], database: ["bf-db", 246] } },
];
/** Every test server of target T: its own, and a fleet's app and database servers. */
const serversOf = (t: (typeof TARGETS)[number]): string[] => [t.server, ...(t.fleet ? [...t.fleet.apps, t.fleet.database].map(([n]) => n) : [])];
const DOCKER_BASE_IMAGE = "fdeploy-test/python:bookworm";

const log = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
fs.mkdirSync(path.join(WORK, "logs"), { recursive: true });
fs.mkdirSync(path.join(WORK, "load"), { recursive: true });

// --------------------------------------------------------------------------- child processes
const children = new Set<import("child_process").ChildProcess>();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const c of children) c.kill("SIGTERM");
    process.exit(130);
  });
}

interface Run { status: number; output: string; seconds: number }

/** Runs a command without blocking the event loop; output goes to a log file and is returned. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; logName?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: opts.cwd ?? PROJECT, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    child.stdin!.end(opts.input ?? "");
    const killer = setTimeout(() => { output += `\n[bench] killed after ${STEP_TIMEOUT_S}s\n`; child.kill("SIGTERM"); }, STEP_TIMEOUT_S * 1000);
    child.on("close", (code) => {
      clearTimeout(killer);
      children.delete(child);
      const seconds = (performance.now() - t0) / 1000;
      if (opts.logName) fs.writeFileSync(path.join(WORK, "logs", `${opts.logName}.log`), `$ ${cmd} ${args.join(" ")}\n${output}\n[exit ${code} after ${seconds.toFixed(2)}s]\n`);
      resolve({ status: code ?? -1, output, seconds });
    });
  });
}

function must(r: Run, what: string): Run {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.output.slice(-4000)}`);
  return r;
}

// ------------------------------------------------------------------------------ test servers
interface Server { name: string; host: string; key: string; knownHosts: string; hostKey: string; ssh(cmd: string, input?: string): string }

function startServer(name: string, octet: number, docker = false, image?: "postgres"): Server {
  const up = spawnSync("bash", [TESTSERVER, "up", name, String(octet), ...(image ? ["--image", image] : [])],
    { encoding: "utf8", env: docker ? { ...process.env, FDEPLOY_DOCKER: "1" } : process.env });
  if (up.status !== 0) throw new Error(`testserver.sh up ${name} failed: ${up.stderr}${up.stdout}`);
  const host = up.stdout.trim().split("\n").pop()!;
  if (host !== `10.213.0.${octet}`) throw new Error(`unexpected server address '${host}'`);
  const cfg = Object.fromEntries(spawnSync("bash", [TESTSERVER, "ssh-config", name], { encoding: "utf8" })
    .stdout.trim().split("\n").map((l) => l.split(/=(.*)/s).slice(0, 2)));
  const hostKey = fs.readFileSync(cfg.KNOWN_HOSTS, "utf8").split("\n").map((l) => l.split(" "))
    .find((f) => f[0] === host)!.slice(1, 3).join(" ");
  const ssh = (command: string, input?: string) => {
    const r = spawnSync("ssh", ["-i", cfg.KEY, "-o", `UserKnownHostsFile=${cfg.KNOWN_HOSTS}`, "-o", "StrictHostKeyChecking=yes",
      "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", `root@${host}`, command], { encoding: "utf8", input });
    if (r.status !== 0) throw new Error(`ssh ${host} '${command}': exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  };
  return { name, host, key: cfg.KEY, knownHosts: cfg.KNOWN_HOSTS, hostKey, ssh };
}

function stopServer(name: string): void {
  spawnSync("bash", [TESTSERVER, "down", name], { stdio: "inherit" });
}

/** Waits until the balancer LB has every app server of APP up (it checks each every second and needs two passes). */
async function balancerUp(lb: Server, app: string, hosts: number): Promise<void> {
  const deadline = Date.now() + 30000;
  let states: string[] = [];
  while (Date.now() < deadline) {
    const agent = lb.ssh(`ls -td /root/.fdeploy/${app}/scripts-* | head -1`).trim();
    const r = JSON.parse(lb.ssh(`python3 -I -B ${agent}/agent lb-status`, JSON.stringify({ APP: app })).trim().split("\n").pop()!);
    states = Object.values(r.servers as Record<string, { status: string }>).map((x) => x.status);
    if (states.length === hosts && states.every((x) => x.startsWith("UP"))) return;
    await sleep(500);
  }
  throw new Error(`the balancer ${lb.host} did not have all ${hosts} app servers up within 30 s: ${states.join(", ")}`);
}

// ----------------------------------------------------------------------- the changes deployed
/** A working copy of the sample app and its migrations, changed before every deploy. */
class WorkingCopy {
  readonly appDir: string;
  readonly migrationsDir: string;
  readonly deps = new Map<string, string>();   // bench dependency -> pinned version
  readonly schemaAfter: number[] = [];           // deploy number -> schema version it runs with
  private migrations = 0;
  private baseSchema: number;

  constructor(readonly root: string) {
    fs.rmSync(root, { recursive: true, force: true });
    this.appDir = path.join(root, "app");
    this.migrationsDir = path.join(root, "migrations");
    fs.cpSync(path.join(PROJECT, "app"), this.appDir, { recursive: true, filter: (s) => !s.includes("__pycache__") });
    fs.cpSync(path.join(PROJECT, "migrations"), this.migrationsDir, { recursive: true });
    // the schema version is the highest NNNN of the migrations (a version may also have its .postgres.up.sql)
    this.baseSchema = Math.max(0, ...fs.readdirSync(this.migrationsDir).filter((f) => /^\d{4}_[a-z0-9_]+\.up\.sql$/.test(f)).map((f) => Number(f.slice(0, 4))));
  }

  /** Deploy n's change: always code (the marker), every 3rd a dependency, every 3rd from the 2nd a migration. */
  apply(n: number): { code: true; dependency?: string; migration?: string } {
    const change: { code: true; dependency?: string; migration?: string } = { code: true };
    if (n > 0 && n % 3 === 0) {
      const spec = DEP_STEPS[(n / 3 - 1) % DEP_STEPS.length];
      const [name, version] = spec.split("==");
      const req = path.join(this.appDir, "requirements.txt");
      const lines = fs.readFileSync(req, "utf8").trimEnd().split("\n").filter((l) => !l.toLowerCase().startsWith(`${name}==`));
      fs.writeFileSync(req, [...lines, spec].join("\n") + "\n");
      change.dependency = `${this.deps.has(name) ? "bump" : "add"} ${spec}`;
      this.deps.set(name, version);
    }
    if (n > 0 && n % 3 === 2) {
      this.migrations++;
      const version = this.baseSchema + this.migrations;
      const file = `${String(version).padStart(4, "0")}_bench_column_${this.migrations}`;
      // a nullable new column: safe for the old release too (strategy canary runs both on it)
      fs.writeFileSync(path.join(this.migrationsDir, `${file}.up.sql`), `-- fdeploy: canary-safe\nALTER TABLE notes ADD COLUMN bench_${this.migrations} TEXT;\n`);
      fs.writeFileSync(path.join(this.migrationsDir, `${file}.down.sql`), `ALTER TABLE notes DROP COLUMN bench_${this.migrations};\n`);
      change.migration = `${file}.up.sql`;
    }
    this.schemaAfter[n] = this.baseSchema + this.migrations;
    this.writeCode(n);
    return change;
  }

  /** Deploy n's code; `flaky`: it also answers 500 to 30 % of the requests that come through nginx. */
  writeCode(n: number, flaky = false): void {
    const wsgi = path.join(this.appDir, "wsgi.py");
    const MARK = "\n# --- bench marker";
    const s = fs.readFileSync(wsgi, "utf8");
    fs.writeFileSync(wsgi, (s.includes(MARK) ? s.slice(0, s.indexOf(MARK)) : s.trimEnd() + "\n") + `${MARK} (bench/bench.ts rewrites everything below this line) ---
import importlib.metadata as _bench_md


@app.get("/api/bench")
def bench_marker():
    deps = {}
    for name in ${JSON.stringify(DEP_NAMES).replace("[", "(").replace("]", ",)")}:
        try:
            deps[name] = _bench_md.version(name)
        except _bench_md.PackageNotFoundError:
            deps[name] = None
    return {"deploy": ${n}, "deps": deps}
${flaky ? `

import random as _bench_random
from flask import request as _bench_request


@app.before_request
def _bench_flaky():
    # only real requests (through nginx): the deploy's own checks reach the slot directly and pass
    if "X-Forwarded-For" in _bench_request.headers and _bench_random.random() < 0.3:
        return "injected failure", 500
    return None
` : ""}`);
  }

  expected(n: number): { deploy: number; deps: Record<string, string | null> } {
    return { deploy: n, deps: Object.fromEntries(DEP_NAMES.map((d) => [d, this.deps.get(d) ?? null])) };
  }
}

/** What /api/bench and /health say now (one request each, to the test server). */
async function probe(host: string): Promise<{ marker: any; health: any }> {
  const get = async (p: string) => {
    const r = await fetch(`http://${host}${p}`, { signal: AbortSignal.timeout(10000) });
    return r.ok ? r.json() : { httpStatus: r.status };
  };
  return { marker: await get("/api/bench"), health: await get("/health") };
}

// ------------------------------------------------------------------------------ load windows
interface LoadData {
  startedAt: string; durationMs: number; newConnections: number; stopReason: string;
  marks: { name: string; t: number }[]; rows: [number, number, number | string, number][];
  retriedClosedConnections?: number;
}

/** Runs fn under load: the load starts a second before it and stops a second after it. */
async function underLoad<T>(host: string, label: string, fn: () => Promise<T>): Promise<{ value: T; load: LoadData }> {
  const out = path.join(WORK, "load", `${label}.json`);
  fs.rmSync(out, { force: true });
  const child = spawn("node", ["-r", "ts-node/register/transpile-only", path.join(BENCH, "load.ts"),
    "--base", `http://${host}`, "--paths", LOAD_PATHS, "--rate", String(RATE), "--connections", String(CONNECTIONS),
    "--timeout", String(REQUEST_TIMEOUT_S), "--warmup", "1", "--max-seconds", String(STEP_TIMEOUT_S + 60), "--out", out],
  { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  children.add(child);
  const exited = new Promise<number>((r) => child.on("close", (code) => { children.delete(child); r(code ?? -1); }));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the load generator did not start")), 30000);
      let buf = "";
      child.stdout!.on("data", (d) => { buf += d; if (buf.includes("ready")) { clearTimeout(t); resolve(); } });
      child.on("close", () => reject(new Error("the load generator exited early")));
    });
    child.stdin!.write("mark start\n");
    const value = await fn();
    child.stdin!.write("mark end\n");
    await sleep(1000);
    child.stdin!.write("stop\n");
    if ((await exited) !== 0) throw new Error(`the load generator failed (${label})`);
    return { value, load: JSON.parse(fs.readFileSync(out, "utf8")) };
  } finally {
    if (child.exitCode === null) child.kill("SIGTERM");
  }
}

interface Summary {
  requests: number; failed: number; failures: Record<string, number>;
  p50Ms: number; p99Ms: number; maxMs: number; newConnections: number; windowSeconds: number;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summarize(loads: LoadData[]): Summary {
  const lat: number[] = [];
  const failures: Record<string, number> = {};
  let failed = 0, newConnections = 0, windowMs = 0;
  for (const l of loads) {
    newConnections += l.newConnections;
    windowMs += l.durationMs;
    for (const [, ms, outcome] of l.rows) {
      lat.push(ms);
      const ok = typeof outcome === "number" && outcome >= 200 && outcome < 300;
      if (!ok) { failed++; failures[String(outcome)] = (failures[String(outcome)] ?? 0) + 1; }
    }
  }
  lat.sort((a, b) => a - b);
  return {
    requests: lat.length, failed, failures, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99),
    maxMs: lat.length ? lat[lat.length - 1] : 0, newConnections, windowSeconds: Math.round(windowMs / 100) / 10,
  };
}

/** The per-run record kept in raw.json: timings, summary, failures with their times, every request. */
function record(load: LoadData) {
  const mark = (n: string) => load.marks.find((m) => m.name === n)?.t ?? null;
  return {
    loadStartedAt: load.startedAt, deployStartMs: mark("start"), deployEndMs: mark("end"),
    // GETs resent once on a new connection after nginx closed their idle keep-alive one (a reload), as browsers do
    retriedClosedConnections: load.retriedClosedConnections ?? 0,
    summary: summarize([load]),
    failedRequests: load.rows.filter(([, , o]) => !(typeof o === "number" && o >= 200 && o < 300))
      .map(([t, ms, outcome, p]) => ({ t, ms, outcome, path: LOAD_PATHS.split(",")[p] })),
    // every request: [ms since the load started (when it was due), latency ms, status or error]
    requests: load.rows.map(([t, ms, o]) => [t, ms, o]),
  };
}

// ------------------------------------------------------------------------------ Pulumi stacks
class Stack {
  readonly dir: string;
  readonly configFile: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(readonly name: string) {
    this.dir = path.join(WORK, "stacks", name);
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.mkdirSync(path.join(this.dir, "state"), { recursive: true });
    this.configFile = path.join(this.dir, `Pulumi.${name}.yaml`);
    this.env = isolatedEnv(path.join(this.dir, "state"));
  }

  pulumi(args: string[], opts: { input?: string; logName?: string } = {}): Promise<Run> {
    return run("pulumi", stackArgv(this.name, this.configFile, args),
      { env: this.env, logName: `${this.name}-${args.slice(0, 2).join("-")}`, ...opts });
  }

  async init(): Promise<void> {
    must(await this.pulumi(["stack", "init", this.name]), "pulumi stack init");
  }

  async set(key: string, value: string, secret = false): Promise<void> {
    must(await this.pulumi(["config", "set", "--path", key, ...(secret ? ["--secret"] : [])], { input: value }), `config set ${key}`);
  }

  up(logName: string): Promise<Run> {
    return this.pulumi(["up", "--yes", "--skip-preview"], { logName });
  }

  /** The project's one-command rollback (or with --forward its roll-forward), as tests/e2e/pulumi.ts runs it. */
  rollback(logName: string, ...args: string[]): Promise<Run> {
    return run("npx", ["ts-node", "--transpile-only", path.join(PROJECT, "scripts/rollback.ts"), "--stack", this.name, "--config-file", this.configFile, ...args],
      { env: this.env, logName });
  }
}

// -------------------------------------------------------------------------------- one target
interface StepRecord {
  n: number; kind: "deploy" | "rollback" | "forward"; change?: object; seconds: number; status: number;
  verified: boolean; observed?: object; expected?: object; log: string; load: ReturnType<typeof record>;
  /** the machine's 1-minute load average and other users' test servers right after the step */
  loadAvg1?: number; otherServers?: string[];
}

interface TargetResult {
  id: string; kind: string; server: string; host: string; initialSeconds?: number;
  steps: StepRecord[]; error?: string; serverInfo?: Record<string, string>;
  /** when, from which commit and with which request load this target ran (targets of a merged raw.json differ) */
  runDate?: string; source?: object; parameters?: object;
  /** the machine's 1/5/15-minute load averages and other users' test servers when this target started and ended */
  loadAvgAtStart?: number[]; loadAvgAtEnd?: number[]; otherServersAtStart?: string[]; otherServersAtEnd?: string[];
  /** canary: the deploy of a release failing 30 % of requests, which must abort at its first step */
  canaryAbort?: CanaryAbort;
}

interface CanaryAbort {
  seconds: number; status: number; abortedAtStep: string | null; stepPercent: number | null;
  stepNewRequests: number | null; stepNew5xx: number | null; stepOldRequests: number | null;
  /** the step's share of its traffic: the most failed requests users may see */
  bound: number | null; usersFailed: number; withinBound: boolean; oldReleaseServing: boolean;
  log: string; load: ReturnType<typeof record>;
}

/** Deep equality of JSON values, whatever the order of object keys (Flask sorts them). */
function checkSame(a: any, b: any): boolean {
  const canon = (v: any): any => (v && typeof v === "object" && !Array.isArray(v)
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : Array.isArray(v) ? v.map(canon) : v);
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

/** Sets the stack's KEY (`server`, `servers[i]`, `loadBalancer`, `database.host`) to test server S. */
async function setHost(stack: Stack, key: string, s: Server): Promise<void> {
  await stack.set(`${key}.host`, s.host);
  await stack.set(`${key}.privateKeyPath`, s.key);
  await stack.set(`${key}.hostKey`, s.hostKey);
}

async function benchTarget(t: (typeof TARGETS)[number]): Promise<TargetResult> {
  log(`== ${t.id}: booting test server${t.fleet ? "s" : ""} ${serversOf(t).join(", ")}`);
  const db = t.fleet && startServer(...t.fleet.database, false, "postgres");
  // a fleet's app servers, each checked after every step (none: the app runs on `server`)
  const apps = t.fleet?.apps.map(([n, o]) => startServer(n, o));
  const server = startServer(t.server, t.octet, t.docker);
  const result: TargetResult = { id: t.id, kind: t.kind, server: t.server, host: server.host, steps: [] };
  const push = result.steps.push.bind(result.steps);
  result.steps.push = (...items: StepRecord[]) => push(...items.map((i) => ({ ...i, loadAvg1: os.loadavg()[0], otherServers: otherServers() })));
  const wc = new WorkingCopy(path.join(PROJECT, ".bench", t.id));
  let stack: Stack | undefined;
  try {
    // the deploy step of this target, and its one-off setup
    let deploy: (logName: string) => Promise<Run>;
    if (t.kind === "pulumi") {
      stack = new Stack(`bench-${t.id}`);
      await stack.init();
      if (apps && db) {
        // README "Scale out": the app servers, the balancer (this target's server) and the database server the stack manages
        for (const [i, a] of apps.entries()) await setHost(stack, `servers[${i}]`, a);
        await setHost(stack, "loadBalancer", server);
        await stack.set("database.engine", "postgres");
        await setHost(stack, "database.host", db);
        await stack.set("databasePassword", crypto.randomBytes(24).toString("hex"), true);
      } else {
        await setHost(stack, "server", server);
      }
      await stack.set("appDir", path.relative(PROJECT, wc.appDir));
      await stack.set("migrationsDir", path.relative(PROJECT, wc.migrationsDir));
      await stack.set("strategy", t.strategy ?? t.id);
      if (t.id === "canary") {
        // the default steps (5, 25, 50, 100 %) and gates, with short steps: 5 s (≈ 12 requests at 5 %)
        await stack.set("canary.stepSeconds", "5");
        await stack.set("canary.minRequests", "10");
        await stack.set("canary.maxWaitSeconds", "30");
      }
      if (t.docker) {
        await stack.set("runtime", "docker");
        await stack.set("docker.baseImage", DOCKER_BASE_IMAGE);
      }
      await stack.set("secrets.SECRET_KEY", crypto.randomBytes(24).toString("hex"), true);
      const s = stack;
      deploy = (logName) => s.up(logName);
    } else {
      deploy = ansibleDeployer(server, wc, t.playbook);
    }
    const prefix = (n: string) => `${t.id}-${n}`;

    // what the app serves now: on one server its probe; on a fleet each app server's, by address
    const observe = async (): Promise<any> => (apps
      ? Object.fromEntries(await Promise.all(apps.map(async (a) => [a.host, await probe(a.host)]))) : probe(server.host));
    const serves = (observed: any, marker: object, schema: number) => (apps ? Object.values(observed) : [observed])
      .every((o: any) => checkSame(o.marker, marker) && o.health?.schema_version === schema);
    const verify = async (n: number, schema: number) => {
      const observed = await observe();
      const expected = { marker: wc.expected(n), schema };
      return { verified: serves(observed, expected.marker, schema), observed, expected };
    };
    // the expected state after each step, so that rollbacks can be checked against it
    const markerAfter: ReturnType<WorkingCopy["expected"]>[] = [];

    wc.apply(0);
    log(`${t.id}: initial deploy (not measured)`);
    const initial = must(await deploy(prefix("initial")), `${t.id}: initial deploy`);
    result.initialSeconds = initial.seconds;
    const v0 = await verify(0, wc.schemaAfter[0]);
    if (!v0.verified) throw new Error(`${t.id}: the initial deploy is not serving the expected code: ${JSON.stringify(v0.observed)}`);
    markerAfter[0] = wc.expected(0);
    // the load goes through the balancer: it must have taken every app server in first
    if (apps) await balancerUp(server, "flaskapp", apps.length);
    const appServer = apps?.[0] ?? server;
    result.serverInfo = {
      nginx: appServer.ssh("nginx -v 2>&1").trim(),
      python: appServer.ssh("python3 --version").trim(),
      gunicorn: (/gunicorn==([\d.]+)/i.exec(fs.readFileSync(path.join(wc.appDir, "requirements.txt"), "utf8")) ?? [])[1] ?? "?",
    };

    const rollbackPoints = new Set<number>();
    for (let n = 2; n <= K && rollbackPoints.size < ROLLBACKS; n += 3) rollbackPoints.add(n);   // after the migration deploys
    let rollbacksDone = 0;

    const rollbackCycle = async (n: number, k: number) => {
      // rollback (timed): the previous deploy's release and schema are live again
      const rb = await underLoad(server.host, prefix(`rollback-${k}`), () => stack!.rollback(prefix(`rollback-${k}`)));
      const prev = markerAfter[n - 1];
      const rv = await observe();
      const rbOk = rb.value.status === 0 && serves(rv, prev, wc.schemaAfter[n - 1]);
      result.steps.push({ n: k, kind: "rollback", seconds: rb.value.seconds, status: rb.value.status, verified: rbOk,
        observed: rv, expected: { marker: prev, schema: wc.schemaAfter[n - 1] }, log: `${prefix(`rollback-${k}`)}.log`, load: record(rb.load) });
      log(`${t.id}: rollback ${k} (to deploy ${n - 1}) ${rb.value.status === 0 ? "ok" : "FAILED"} in ${rb.value.seconds.toFixed(1)}s, ` +
        `verified=${rbOk}, failed requests=${result.steps.at(-1)!.load.summary.failed}`);
      if (rb.value.status !== 0) throw new Error(`${t.id}: rollback ${k} failed:\n${rb.value.output.slice(-3000)}`);
      // roll forward (the pin removed, then an up; timed, but not as a rollback)
      const fw = await underLoad(server.host, prefix(`forward-${k}`), () => stack!.rollback(prefix(`forward-${k}`), "--forward"));
      const fv = await verify(n, wc.schemaAfter[n]);
      result.steps.push({ n: k, kind: "forward", seconds: fw.value.seconds, status: fw.value.status, verified: fv.verified,
        observed: fv.observed, expected: fv.expected, log: `${prefix(`forward-${k}`)}.log`, load: record(fw.load) });
      log(`${t.id}: roll-forward ${k} ${fw.value.status === 0 ? "ok" : "FAILED"} in ${fw.value.seconds.toFixed(1)}s, ` +
        `verified=${fv.verified}, failed requests=${result.steps.at(-1)!.load.summary.failed}`);
      if (fw.value.status !== 0) throw new Error(`${t.id}: roll-forward ${k} failed:\n${fw.value.output.slice(-3000)}`);
    };

    for (let n = 1; n <= K; n++) {
      const change = wc.apply(n);
      const r = await underLoad(server.host, prefix(`deploy-${n}`), () => deploy(prefix(`deploy-${n}`)));
      const v = r.value.status === 0 ? await verify(n, wc.schemaAfter[n]) : { verified: false, observed: undefined, expected: undefined };
      result.steps.push({ n, kind: "deploy", change, seconds: r.value.seconds, status: r.value.status, verified: v.verified,
        observed: v.observed, expected: v.expected, log: `${prefix(`deploy-${n}`)}.log`, load: record(r.load) });
      const s = result.steps.at(-1)!.load.summary;
      log(`${t.id}: deploy ${n}/${K} [${Object.entries(change).map(([k, x]) => (x === true ? k : `${k}: ${x}`)).join("; ")}] ` +
        `${r.value.status === 0 ? "ok" : "FAILED"} in ${r.value.seconds.toFixed(1)}s, verified=${v.verified}, ` +
        `requests=${s.requests} failed=${s.failed} p99=${s.p99Ms}ms max=${s.maxMs}ms`);
      if (r.value.status !== 0) throw new Error(`${t.id}: deploy ${n} failed:\n${r.value.output.slice(-3000)}`);
      markerAfter[n] = wc.expected(n);
      if (t.kind === "pulumi" && rollbackPoints.has(n)) await rollbackCycle(n, ++rollbacksDone);
    }
    // quick runs (few deploys): the remaining rollbacks after the last deploy
    while (t.kind === "pulumi" && rollbacksDone < ROLLBACKS) await rollbackCycle(K, ++rollbacksDone);
    if (t.id === "canary") result.canaryAbort = await canaryAbortCase(server, wc, deploy, K, markerAfter[K], wc.schemaAfter[K]);
  } catch (e) {
    result.error = String((e as Error).message ?? e);
    log(`${t.id}: ERROR ${result.error.split("\n").slice(0, 12).join("\n")}\n(see ${path.join(WORK, "logs")})`);
  } finally {
    if (stack) fs.rmSync(stack.dir, { recursive: true, force: true });   // state holds encrypted secrets only
    log(`${t.id}: stopping ${serversOf(t).join(", ")}`);
    for (const name of serversOf(t)) stopServer(name);
  }
  return result;
}

/** Canary: a release answering 500 to 30 % of real requests, deployed under load; it must abort at its first step. */
async function canaryAbortCase(server: Server, wc: WorkingCopy, deploy: (logName: string) => Promise<Run>, n: number,
  live: ReturnType<WorkingCopy["expected"]>, schema: number): Promise<CanaryAbort> {
  wc.writeCode(n + 1, true);
  const name = "canary-abort-30pct";
  const r = await underLoad(server.host, name, () => deploy(name));
  wc.writeCode(n);   // the working copy as it was (nothing later deploys it)
  const after = await probe(server.host);
  const m = /canary aborted at step (\d+\/\d+) \((\d+) %\)[^\[]*\[new (\d+) requests, (\d+) 5xx \([^)]*\), p95 [^|]*\| old (\d+) requests/.exec(r.value.output);
  const rec = record(r.load);
  const [pct, newReq, new5xx, oldReq] = m ? [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])] : [null, null, null, null];
  const bound = m ? (pct! / 100) * (newReq! + oldReq!) : null;
  const result: CanaryAbort = {
    seconds: r.value.seconds, status: r.value.status, abortedAtStep: m ? m[1] : null, stepPercent: pct,
    stepNewRequests: newReq, stepNew5xx: new5xx, stepOldRequests: oldReq, bound,
    usersFailed: rec.summary.failed, withinBound: bound !== null && rec.summary.failed <= bound,
    oldReleaseServing: checkSame(after.marker, live) && after.health?.schema_version === schema,
    log: `${name}.log`, load: rec,
  };
  log(`canary: a release failing 30 % of requests: deploy exit ${r.value.status} in ${r.value.seconds.toFixed(1)}s, aborted at step ` +
    `${result.abortedAtStep ?? "?"} (${pct ?? "?"} %): the step sent ${newReq ?? "?"} requests to the new release (${new5xx ?? "?"} answered 5xx) ` +
    `and ${oldReq ?? "?"} to the old; users saw ${result.usersFailed} failed of ${rec.summary.requests} requests ` +
    `(bound: ${pct ?? "?"} % of the step's ${m ? newReq! + oldReq! : "?"} = ${bound?.toFixed(1) ?? "?"}; within: ${result.withinBound}); ` +
    `old release serving afterwards: ${result.oldReleaseServing}`);
  return result;
}

// -------------------------------------------------------------------------------------- Ansible
/** An Ansible peer: bench/ansible/deploy.yml (or PLAYBOOK) with ansible-core from the bench venv (common.ts). */
function ansibleDeployer(server: Server, wc: WorkingCopy, playbook?: AnsiblePeer): (logName: string) => Promise<Run> {
  const p = ansiblePlaybook(path.join(WORK, "ansible", server.name), server, wc.appDir, wc.migrationsDir, PROJECT, playbook);
  return (logName) => run(p.cmd, p.args, { cwd: p.cwd, env: p.env, logName });
}

// ----------------------------------------------------------------------------------------- main
/** Test servers of other users of this machine (e2e tests, a dev server): they share the CPUs. */
const otherServers = () => otherServersThan("bench-").filter((n) => !TARGETS.some((t) => serversOf(t).includes(n)));

async function main(): Promise<void> {
  const started = new Date();
  const targets = TARGETS.filter((t) => ONLY.includes(t.id));
  const raw: any = {
    date: started.toISOString(),
    machine: machine(),
    loadAvgAtStart: os.loadavg(),
    otherServersAtStart: otherServers(),
    source: JSON.parse(fs.readFileSync(path.join(WORK, "source.json"), "utf8")),
    parameters: {
      deploysPerTarget: K, rollbacksPerStrategy: ROLLBACKS, rateRps: RATE, connections: CONNECTIONS, keepAlive: true,
      paths: LOAD_PATHS.split(","), requestTimeoutSeconds: REQUEST_TIMEOUT_S, loadWindow: "deploy ±1 s",
      changes: "every deploy: code (a new /api/bench marker); every 3rd (3, 6, 9, …): dependency add/bump " +
        `(${DEP_STEPS.join(", ")}); every 3rd from the 2nd (2, 5, 8, …): a new migration (ALTER TABLE notes ADD COLUMN)`,
      rollbacks: "after the deploys with a migration (2, 5, 8), each followed by a roll-forward (`npm run rollback -- --forward`)",
      workers: 2,
    },
    targets: [] as TargetResult[],
  };
  // --merge: an earlier run's targets stay, except those run now (its date and parameters head the report);
  // each target keeps its own date, commit and request load (parameters), so a merged row names the run it came from
  const parameters = raw.parameters;
  const base = MERGE && fs.existsSync(MERGE) ? JSON.parse(fs.readFileSync(MERGE, "utf8")) : undefined;
  if (base) {
    for (const t of base.targets as TargetResult[]) { t.runDate ??= base.date; t.source ??= base.source;
      if (t.runDate === base.date) t.parameters ??= base.parameters;   // a target merged into it earlier may have run with others
    }
    Object.assign(raw, { ...base, targets: base.targets.filter((t: TargetResult) => !ONLY.includes(t.id)) });
  }
  const order = (id: string) => TARGETS.findIndex((x) => x.id === id);
  for (const t of targets) {
    const at = { loadAvgAtStart: os.loadavg(), otherServersAtStart: otherServers() };
    const r = await benchTarget(t);
    Object.assign(r, at, { loadAvgAtEnd: os.loadavg(), otherServersAtEnd: otherServers() });
    r.runDate = started.toISOString();
    r.source = JSON.parse(fs.readFileSync(path.join(WORK, "source.json"), "utf8"));
    r.parameters = parameters;
    raw.targets = [...raw.targets.filter((x: TargetResult) => x.id !== r.id), r].sort((a: TargetResult, b: TargetResult) => order(a.id) - order(b.id));
    fs.writeFileSync(OUT, JSON.stringify(raw));   // partial results survive a later failure
  }
  if (!base) {
    raw.loadAvgAtEnd = os.loadavg();
    raw.otherServersAtEnd = otherServers();
    raw.totalMinutes = Math.round((Date.now() - started.getTime()) / 6000) / 10;
  }
  fs.writeFileSync(OUT, JSON.stringify(raw));
  log(`raw results: ${OUT}`);
  if (raw.targets.some((t: TargetResult) => t.error)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
