// npm run bench:speed [-- --runs 5] [--only floor-a,no-op,…] — how fast a deploy is, against the
// floors the machine allows and against a peer (issue #11). See bench/README.md ("Speed").
// npm run bench:speed -- --profile — where the time of one code-only deploy goes (profile() below).
// npm run bench:speed -- --render — bench/results/speed.md again from speed.json (no run).
//
// Cases (each timed --runs times; min / median / max):
//   floor-a             `pulumi up` of an empty TypeScript Pulumi program (bench/speed-empty: same
//                       runtime options as ours — typescript, a noCheck tsconfig — local file backend)
//   floor-b             a bare code deploy of the same change: tar | ssh (pinned host key) into a
//                       folder, `systemctl restart` of a unit that runs it, until the new code answers
//   floor-c             `pip install six==1.17.0` alone into an existing venv on the server
//   no-op               `pulumi up` of this project with nothing changed
//   code                one line of app code changed -> `pulumi up` (the new code is live)
//   dependency          six==1.17.0 added to requirements.txt (+ the code marker) -> `pulumi up`
//   dependency-bump     six==1.16.0 -> six==1.17.0 (+ the code marker) -> `pulumi up`: a new venv from nothing
//   dependency-removal  six==1.17.0 removed (+ the code marker) -> `pulumi up`: a new venv from nothing
//   rollback            `npm run rollback` (its `--forward` follows, untimed)
//   ansible-code        bench/ansible/deploy.yml after the same code change
//   ansible-dependency  bench/ansible/deploy.yml after the same dependency change
//   ansible-dependency-bump, ansible-dependency-removal   the same bump and removal
//   ansible-tuned-code, ansible-tuned-dependency, ansible-tuned-dependency-bump, ansible-tuned-dependency-removal
//                       the same with bench/ansible/deploy-tuned.yml (the careful operator's playbook:
//                       releases + symlink, a venv per requirements hash, a HUP for code): the goals
//                       compare with these
// Servers: "speed" (10.213.0.141: floors B and C and the Pulumi cases), "speed-ans" (.142: Ansible),
// "ha-speed" (.241: tuned Ansible); other NAME:OCTETs with FDEPLOY_SPEED_SERVER /
// FDEPLOY_SPEED_ANS_SERVER / FDEPLOY_SPEED_TUNED_SERVER.
// Each case is set up first (untimed: stacks, servers, initial deploys); then the timed runs go in
// rounds — round i runs every selected case once — so the machine's load (others' tests) weighs on
// every case and its floor alike.
// Results are MERGED into bench/results/speed.json (the cases run now replace their old rows) and
// bench/results/speed.md is written from it, so one case can be re-run alone.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { copyApp, copyMigrations } from "../tests/e2e/app-copy";
import { deployFresh, Deployment } from "../tests/e2e/fixture";
import { changed, PROJECT_DIR, TestStack } from "../tests/e2e/pulumi";
import { addWheels, startServer, stopAll, stopServer, TestServer } from "../tests/servers";
import { commitOf, Provenance, provenanceEnd, provenanceLine, provenanceStart } from "../tests/servers/provenance";
import { AnsiblePeer, ansiblePlaybook, machine, otherServers } from "./common";
import { SPEED_DEP } from "./deps";

export const CASES = ["floor-a", "floor-b", "floor-c", "no-op", "code", "dependency", "dependency-bump", "dependency-removal", "rollback",
  "ansible-code", "ansible-dependency", "ansible-dependency-bump", "ansible-dependency-removal",
  "ansible-tuned-code", "ansible-tuned-dependency", "ansible-tuned-dependency-bump", "ansible-tuned-dependency-removal"] as const;
export type CaseId = (typeof CASES)[number];

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(argValue("runs") ?? 5);
const ONLY = (argValue("only") ?? CASES.join(",")).split(",").filter(Boolean);
const RESULTS = path.join(__dirname, "results");
const WORK = path.join(__dirname, "work", "speed");
const EMPTY_PROJECT = path.join(__dirname, "speed-empty");
const DEP = SPEED_DEP.add;
const versionOf = (req: string) => req.split("==")[1];
/** NAME:OCTET from the environment (FDEPLOY_SPEED_SERVER, FDEPLOY_SPEED_ANS_SERVER), for a machine where the default
 * names/octets belong to someone else's tests */
const serverFromEnv = (v: string | undefined, name: string, octet: number) => {
  if (!v) return { name, octet };
  const m = /^([a-z][a-z0-9-]*):(\d{1,3})$/.exec(v);
  if (!m) throw new Error(`expected NAME:OCTET (e.g. spd3:143), got '${v}'`);
  return { name: m[1], octet: Number(m[2]) };
};
const SERVER = serverFromEnv(process.env.FDEPLOY_SPEED_SERVER, "speed", 141);
const ANSIBLE_SERVER = serverFromEnv(process.env.FDEPLOY_SPEED_ANS_SERVER, "speed-ans", 142);
const TUNED_SERVER = serverFromEnv(process.env.FDEPLOY_SPEED_TUNED_SERVER, "ha-speed", 241);
const OUR_SERVERS = [SERVER.name, ANSIBLE_SERVER.name, TUNED_SERVER.name];

export interface CaseResult {
  id: CaseId;
  /** wall seconds of each timed run */
  seconds: number[];
  date: string;
  commit: string;
  /** 1/5/15-minute load averages before the case's first run and after its last */
  loadBefore: number[];
  loadAfter: number[];
  otherServers: string[];
  /** per run: details (e.g. floor-c's time inside the server, the ssh session around it) */
  details?: object[];
  note?: string;
}

const log = (msg: string) => console.log(`[speed ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const round2 = (x: number) => Math.round(x * 100) / 100;
fs.mkdirSync(path.join(WORK, "logs"), { recursive: true });

interface Timed { status: number; output: string; seconds: number }

const children = new Set<ChildProcess>();

/** Run a command to its end; the wall time; its output goes to bench/work/speed/logs/LOGNAME.log. */
function timed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; logName: string }): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: opts.cwd ?? PROJECT_DIR, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let output = "";
    child.stdout!.on("data", (x) => (output += x));
    child.stderr!.on("data", (x) => (output += x));
    child.stdin!.end(opts.input ?? "");
    child.on("close", (code) => {
      children.delete(child);
      const seconds = (performance.now() - t0) / 1000;
      fs.writeFileSync(path.join(WORK, "logs", `${opts.logName}.log`), `$ ${cmd} ${args.join(" ")}\n${output}\n[exit ${code} after ${seconds.toFixed(2)}s]\n`);
      resolve({ status: code ?? -1, output, seconds });
    });
  });
}
// Ctrl-C / SIGTERM: end the command running now, then tests/servers' own handler stops the servers
for (const sig of ["SIGINT", "SIGTERM"] as const) process.prependOnceListener(sig, () => { for (const c of children) c.kill("SIGTERM"); });

function must(r: Timed, what: string): Timed {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.output.slice(-4000)}`);
  return r;
}

// ------------------------------------------------------------------------- the change deployed
const MARK = "\n# --- speed marker";

/** The code change: wsgi.py answers /api/speed with TAG (and the installed six, if any). */
function setMarker(appDir: string, tag: string): void {
  const wsgi = path.join(appDir, "wsgi.py");
  const s = fs.readFileSync(wsgi, "utf8");
  fs.writeFileSync(wsgi, (s.includes(MARK) ? s.slice(0, s.indexOf(MARK)) : s.trimEnd() + "\n") + `${MARK} (bench/speed.ts rewrites everything below this line) ---
import importlib.metadata as _speed_md


@app.get("/api/speed")
def speed_marker():
    try:
        six = _speed_md.version("six")
    except _speed_md.PackageNotFoundError:
        six = None
    return {"tag": ${JSON.stringify(tag)}, "six": six}
`);
}

/**
 * The dependency change: ADD (e.g. six==1.17.0) in requirements.txt, or none, with a comment naming
 * the run (STAMP: by default when ADD is given), so that every run is a requirements file the server
 * has never seen (venvs are shared by content hash: adding the same package again after removing it
 * would reuse the venv built the first time). No ADD and no STAMP: the app's own requirements.
 */
function setDependency(appDir: string, add: string | undefined, stamp = add !== undefined): void {
  const req = path.join(appDir, "requirements.txt");
  const base = fs.readFileSync(req, "utf8").split("\n# --- speed dependency")[0].trimEnd() + "\n";
  const comment = stamp ? `# --- speed dependency (bench/speed.ts), run ${new Date().toISOString()}\n` : "";
  fs.writeFileSync(req, `${base}${comment}${add ? `${add}\n` : ""}`);
}

/** What http://HOST/api/speed answers (through nginx). */
function served(host: string): { tag?: string; six?: string | null } {
  const r = spawnSync("curl", ["-fsS", "-m", "10", `http://${host}/api/speed`], { encoding: "utf8" });
  try {
    return JSON.parse(r.stdout);
  } catch {
    return {};
  }
}

function expectServed(host: string, tag: string, six: string | null, what: string): void {
  const got = served(host);
  if (got.tag !== tag || (got.six ?? null) !== six) throw new Error(`${what}: expected tag ${tag}, six ${six}; the server answers ${JSON.stringify(got)}`);
}

// -------------------------------------------------------------------------------------- cases
/** One timed run of a case: its wall seconds (and what else is worth keeping). */
interface RunResult { seconds: number; detail?: object }

/** A case: its untimed setup, then RUNS timed runs, interleaved with the other cases' (see main). */
interface Runner { id: CaseId; run(i: number): Promise<RunResult> }

function sshArgs(server: TestServer): string[] {
  // a new connection each time (as the command plugin dials one per step), the pinned host key only
  return ["-i", server.keyPath, "-o", `UserKnownHostsFile=${server.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-o", "ControlMaster=no", "-o", "ControlPath=none", `root@${server.host}`];
}

const upArgs = (stack: TestStack) => ["up", "--yes", "--skip-preview", "--stack", stack.name, "--config-file", stack.configFile, "--non-interactive"];

/** Floor A: `pulumi up` of the empty program, on a stack of its own (file backend in a temp dir). */
async function floorA(cleanups: (() => void)[]): Promise<Runner> {
  const stack = new TestStack("speed-empty", EMPTY_PROJECT);
  cleanups.push(() => stack.remove());
  must(await timed("pulumi", upArgs(stack), { cwd: EMPTY_PROJECT, env: stack.env, logName: "floor-a-first" }), "floor A: first up");
  return {
    id: "floor-a",
    async run(i) {
      const r = must(await timed("pulumi", upArgs(stack), { cwd: EMPTY_PROJECT, env: stack.env, logName: `floor-a-${i}` }), `floor A run ${i}`);
      return { seconds: r.seconds };
    },
  };
}

/**
 * Floor B: tar | ssh 'tar -x; systemctl restart; until the new code answers' — one SSH session. Its
 * target on the speed server (set up untimed): /srv/floorb/app and a unit that runs it with Gunicorn
 * like the app's own slot (the app's user, environment file and venv), on a socket of its own, so the
 * stack's app is not disturbed.
 */
async function floorB(server: TestServer, appDir: string): Promise<Runner> {
  const dir = path.join(WORK, "floor-b-app");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(appDir, dir, { recursive: true, filter: (s) => !s.includes("__pycache__") });
  server.ssh(`set -e
install -d -m 0755 /srv/floorb/app
cat >/etc/systemd/system/floorb.service <<'UNIT'
[Unit]
Description=bench/speed.ts floor B: the sample app deployed by tar over ssh
StartLimitIntervalSec=0
[Service]
Type=simple
User=flaskapp
Group=flaskapp
RuntimeDirectory=floorb
WorkingDirectory=/srv/floorb/app
EnvironmentFile=/etc/fdeploy/flaskapp/env
ExecStart=/srv/flaskapp/current/.venv/bin/gunicorn --workers 2 --bind unix:/run/floorb/app.sock wsgi:app
UNIT
systemctl daemon-reload`);
  const deploy = async (i: number | string) => {
    const tag = `floor-b-${i}-${Date.now()}`;
    setMarker(dir, tag);
    const remote = "set -e; tar -x -C /srv/floorb/app; systemctl restart floorb.service; " +
      `for i in $(seq 300); do curl -fsS -m 5 --unix-socket /run/floorb/app.sock http://localhost/api/speed 2>/dev/null | grep -q '"${tag}"' && exit 0; sleep 0.05; done; exit 1`;
    const script = `tar -C "$1" --exclude=__pycache__ -cf - . | ssh ${sshArgs(server).map((a) => `'${a}'`).join(" ")} "$2"`;
    return must(await timed("bash", ["-c", script, "floor-b", dir, remote], { logName: `floor-b-${i}` }), `floor B run ${i}`);
  };
  await deploy("first");   // starts the unit: not timed
  return { id: "floor-b", async run(i) { return { seconds: (await deploy(i)).seconds }; } };
}

/** Floor C: pip install of the one package into an existing venv (the app's requirements) on the server. */
async function floorC(server: TestServer): Promise<Runner> {
  server.ssh("set -e; [ -x /srv/floorc/venv/bin/pip ] || { python3 -m venv /srv/floorc/venv && " +
    "PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 /srv/floorc/venv/bin/pip install -q -r /srv/flaskapp/current/requirements.txt; }");
  return {
    id: "floor-c",
    async run(i) {
      server.ssh("/srv/floorc/venv/bin/pip uninstall -q -y six >/dev/null 2>&1 || true");
      const r = must(await timed("ssh", [...sshArgs(server),
        `set -e; a=$(date +%s.%N); PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 /srv/floorc/venv/bin/pip install -q ${DEP}; b=$(date +%s.%N); echo "pip: $a $b"`],
      { logName: `floor-c-${i}` }), `floor C run ${i}`);
      const m = /pip: (\S+) (\S+)/.exec(r.output)!;
      const inside = Number(m[2]) - Number(m[1]);
      return { seconds: inside, detail: { pipSeconds: round2(inside), sshSessionSeconds: round2(r.seconds) } };
    },
  };
}

/**
 * The Pulumi cases on one stack. `deployed` models the server's release history as the agent's rollback-plan reads
 * it (a deploy pushes its release, a rollback pops back to the one before): what each deploy served.
 */
function pulumiCases(d: Deployment): Record<"no-op" | "code" | "dependency" | "dependency-bump" | "dependency-removal" | "rollback", Runner> {
  const deployed: { tag: string; six: string | null }[] = [{ tag: "initial", six: null }];
  const up = (logName: string) => timed("pulumi", upArgs(d.stack), { env: d.stack.env, logName });
  /** Deploy appDir as it is now (untimed or timed by the caller), check what it serves. */
  const deploy = async (tag: string, six: string | null, logName: string) => {
    const r = must(await up(logName), logName);
    expectServed(d.server.host, tag, six, logName);
    deployed.push({ tag, six });
    return r;
  };
  const version = DEP.split("==")[1];
  const npm = (args: string[], logName: string) => timed("npm", ["run", "--silent", "rollback", "--", "--stack", d.stack.name,
    "--config-file", d.stack.configFile, ...args], { env: d.stack.env, logName });
  return {
    "no-op": {
      id: "no-op",
      async run(i) {
        // the previous case's last up leaves nothing to change; should one have, that up settles it
        // and the next one is timed (`settled` in speed.json)
        const settled: string[][] = [];
        for (let attempt = 1; ; attempt++) {
          const r = must(await up(`no-op-${i}${attempt > 1 ? `-${attempt}` : ""}`), `no-op run ${i}`);
          const c = changed(r.output);
          if (!c.length) return { seconds: r.seconds, detail: settled.length ? { settled } : undefined };
          if (attempt === 3) throw new Error(`no-op run ${i}: every up changes ${c.join(", ")}:\n${r.output.slice(-3000)}`);
          log(`no-op run ${i}: the up changed ${c.join(", ")}; timing another one`);
          settled.push(c);
        }
      },
    },
    code: {
      id: "code",
      async run(i) {
        const tag = `code-${i}-${Date.now()}`;
        setMarker(d.app.dir, tag);
        const r = await deploy(tag, null, `code-${i}`);
        return { seconds: r.seconds, detail: { changed: changed(r.output) } };
      },
    },
    dependency: {
      id: "dependency",
      async run(i) {
        const tag = `dependency-${i}-${Date.now()}`;
        setDependency(d.app.dir, DEP);
        setMarker(d.app.dir, tag);
        const r = await deploy(tag, version, `dependency-${i}`);
        const installed = /installed in (\d+)s/.exec(r.output)?.[1];
        // back to the requirements without it (untimed; their venv is on the server already)
        setDependency(d.app.dir, undefined);
        setMarker(d.app.dir, `${tag}-reset`);
        await deploy(`${tag}-reset`, null, `dependency-${i}-reset`);
        return { seconds: r.seconds, detail: { changed: changed(r.output), releaseShInstallSeconds: installed ? Number(installed) : null } };
      },
    },
    // a bump and a removal are no longer a plain addition to the live requirements: the venv is
    // built from nothing (release.py `seed`). Each starts from the state it needs (an untimed up)
    "dependency-bump": {
      id: "dependency-bump",
      async run(i) {
        const tag = `dependency-bump-${i}-${Date.now()}`;
        setDependency(d.app.dir, SPEED_DEP.bumpFrom);
        setMarker(d.app.dir, `${tag}-from`);
        await deploy(`${tag}-from`, versionOf(SPEED_DEP.bumpFrom), `dependency-bump-${i}-from`);
        setDependency(d.app.dir, SPEED_DEP.bumpTo);
        setMarker(d.app.dir, tag);
        const r = await deploy(tag, versionOf(SPEED_DEP.bumpTo), `dependency-bump-${i}`);
        return { seconds: r.seconds, detail: { changed: changed(r.output), seeded: /starting from a copy of its venv/.test(r.output) } };
      },
    },
    "dependency-removal": {
      id: "dependency-removal",
      async run(i) {
        const tag = `dependency-removal-${i}-${Date.now()}`;
        if (deployed[deployed.length - 1].six === null) {
          setDependency(d.app.dir, DEP);
          setMarker(d.app.dir, `${tag}-from`);
          await deploy(`${tag}-from`, version, `dependency-removal-${i}-from`);
        }
        setDependency(d.app.dir, undefined, true);   // the app's requirements, under a new comment
        setMarker(d.app.dir, tag);
        const r = await deploy(tag, null, `dependency-removal-${i}`);
        return { seconds: r.seconds, detail: { changed: changed(r.output), seeded: /starting from a copy of its venv/.test(r.output) } };
      },
    },
    rollback: {
      id: "rollback",
      async run(i) {
        if (deployed.length < 2) {   // nothing to go back to yet (rollback alone): one more deploy, untimed
          const tag = `rollback-prepare-${Date.now()}`;
          setMarker(d.app.dir, tag);
          await deploy(tag, null, "rollback-prepare");
        }
        const [back, top] = deployed.slice(-2);
        const r = must(await npm([], `rollback-${i}`), `rollback run ${i}`);
        expectServed(d.server.host, back.tag, back.six, `rollback run ${i}`);
        const f = must(await npm(["--forward"], `rollback-${i}-forward`), `rollback run ${i}: --forward`);
        expectServed(d.server.host, top.tag, top.six, `rollback run ${i}: --forward`);
        return { seconds: r.seconds, detail: { changed: changed(r.output), forwardSeconds: round2(f.seconds) } };
      },
    },
  };
}

/**
 * The cases of one Ansible peer on its own server, after one untimed initial deploy: "ansible-…"
 * (deploy.yml, the conventional playbook) or "ansible-tuned-…" (deploy-tuned.yml).
 */
async function ansibleCases(server: TestServer, peer: AnsiblePeer): Promise<Partial<Record<CaseId, Runner>>> {
  const tuned = peer === "deploy-tuned.yml";
  const prefix = tuned ? "ansible-tuned" : "ansible";
  const app = copyApp(server.name);
  const migrations = copyMigrations(server.name);
  const p = ansiblePlaybook(path.join(WORK, "ansible", server.name), { name: server.name, host: server.host, key: server.keyPath, knownHosts: server.knownHostsPath },
    app.dir, migrations.dir, PROJECT_DIR, peer);
  const play = (logName: string) => timed(p.cmd, p.args, { cwd: p.cwd, env: p.env, logName });
  setMarker(app.dir, "initial");
  log(`${server.name}: initial Ansible deploy with ${peer} (not timed)`);
  must(await play(`${prefix}-initial`), `${peer}: initial deploy`);
  expectServed(server.host, "initial", null, `${peer}: initial deploy`);
  // six stays in requirements.txt (and installed) after a dependency run, so that a later code run
  // changes only wsgi.py, as the Pulumi code case does
  let six: string | null = null;
  // the tuned playbook reloads (HUP: the same Gunicorn master) for code and restarts for a new venv
  const master = () => server.ssh("systemctl show -P MainPID flaskapp.service").trim();
  const code: Runner = {
    id: `${prefix}-code` as CaseId,
    async run(i) {
      const tag = `${prefix}-code-${i}-${Date.now()}`;
      setMarker(app.dir, tag);
      const before = master();
      const r = must(await play(`${prefix}-code-${i}`), `${peer} code run ${i}`);
      expectServed(server.host, tag, six, `${peer} code run ${i}`);
      const reloaded = master() === before;
      if (tuned && !reloaded) throw new Error(`${peer} code run ${i}: Gunicorn was restarted, not reloaded (HUP)`);
      return { seconds: r.seconds, detail: { gunicornMasterKept: reloaded } };
    },
  };
  const dependency: Runner = {
    id: `${prefix}-dependency` as CaseId,
    async run(i) {
      // the same change as the Pulumi case: six added + the code marker. The conventional playbook
      // pip-installs into its one venv (six uninstalled before, untimed); the tuned one builds the
      // venv of the new requirements file (each run's is new: it names the run)
      if (!tuned) server.ssh("/srv/flaskapp/venv/bin/pip uninstall -q -y six >/dev/null 2>&1 || true");
      const tag = `${prefix}-dependency-${i}-${Date.now()}`;
      setDependency(app.dir, DEP);
      setMarker(app.dir, tag);
      six = DEP.split("==")[1];
      const before = master();
      const r = must(await play(`${prefix}-dependency-${i}`), `${peer} dependency run ${i}`);
      expectServed(server.host, tag, six, `${peer} dependency run ${i}`);
      return { seconds: r.seconds, detail: { gunicornMasterKept: master() === before } };
    },
  };
  // bump and removal: each from the state it needs (an untimed run). The conventional playbook
  // pip-installs the new requirements into its one venv: a bump upgrades six in place, a removal
  // leaves six installed (the pip module installs, it never uninstalls; `sixLeftInstalled`). The
  // tuned one builds the venv of each new requirements file from nothing
  const prepare = async (req: string, tag: string, logName: string) => {
    setDependency(app.dir, req);
    setMarker(app.dir, tag);
    must(await play(logName), `${peer} ${logName}`);
    six = versionOf(req);
    expectServed(server.host, tag, six, `${peer} ${logName}`);
  };
  const bump: Runner = {
    id: `${prefix}-dependency-bump` as CaseId,
    async run(i) {
      const tag = `${prefix}-dependency-bump-${i}-${Date.now()}`;
      await prepare(SPEED_DEP.bumpFrom, `${tag}-from`, `${prefix}-dependency-bump-${i}-from`);
      setDependency(app.dir, SPEED_DEP.bumpTo);
      setMarker(app.dir, tag);
      const r = must(await play(`${prefix}-dependency-bump-${i}`), `${peer} dependency bump run ${i}`);
      six = versionOf(SPEED_DEP.bumpTo);
      expectServed(server.host, tag, six, `${peer} dependency bump run ${i}`);
      return { seconds: r.seconds };
    },
  };
  const removal: Runner = {
    id: `${prefix}-dependency-removal` as CaseId,
    async run(i) {
      const tag = `${prefix}-dependency-removal-${i}-${Date.now()}`;
      if (six === null) await prepare(DEP, `${tag}-from`, `${prefix}-dependency-removal-${i}-from`);
      setDependency(app.dir, undefined, true);
      setMarker(app.dir, tag);
      const r = must(await play(`${prefix}-dependency-removal-${i}`), `${peer} dependency removal run ${i}`);
      const left = tuned ? null : six;
      expectServed(server.host, tag, left, `${peer} dependency removal run ${i}`);
      six = left;
      return { seconds: r.seconds, detail: { sixLeftInstalled: left !== null } };
    },
  };
  return { [code.id]: code, [dependency.id]: dependency, [bump.id]: bump, [removal.id]: removal };
}

// ------------------------------------------------------------------------------------ profile
/**
 * --profile: where the time of one code-only deploy goes. The speed server gets the app and one
 * code change (untimed, as the code case's runs follow one another); then one more code change is
 * deployed with three clocks running, all on this machine's one clock (the test server is a
 * container on the same kernel):
 *   - the engine: `pulumi up -v=9 --logtostderr --logflow` (glog timestamps: plugin launches, the
 *     program's resource registrations, each step applied and retired). -v=9 prints resource inputs
 *     unmasked (the test stack's secrets): only the lines used here are kept, in bench/work.
 *   - the program: bench/speed-hook.js in every Node.js process (NODE_OPTIONS): its start, exit and
 *     the first require of big modules;
 *   - the server: every remote script traced (bash xtrace with $EPOCHREALTIME, via sshd's SetEnv
 *     BASH_ENV), and sshd's journal of accepted connections.
 * Writes bench/results/speed-profile.md.
 */
async function profile(): Promise<void> {
  const dir = path.join(WORK, "profile");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const prov = provenanceStart(ours, PROJECT_DIR);
  log(`${SERVER.name}: booting 10.213.0.${SERVER.octet} and deploying the sample app (not timed)`);
  const d = deployFresh(SERVER.name, SERVER.octet);
  try {
    for (const tag of ["initial", "warm-up"]) {
      setMarker(d.app.dir, tag);
      must(await timed("pulumi", upArgs(d.stack), { env: d.stack.env, logName: `profile-${tag}` }), `profile: ${tag} deploy`);
    }
    d.server.ssh(`set -e
install -d -m 0700 /var/log/fdeploy-trace
cat >/root/fdeploy-trace.sh <<'TRACE'
# bench/speed.ts --profile: every bash of an SSH session reads this (sshd SetEnv BASH_ENV); the
# flask-deploy scripts are traced with timestamps, one file per process
case $0 in
  *.fdeploy/*/scripts-*/*.sh)
    exec {BASH_XTRACEFD}>>"/var/log/fdeploy-trace/$(date +%s.%N)-$$-\${0##*/}.log"
    PS4='+ $EPOCHREALTIME \${BASH_SOURCE[0]##*/}:$LINENO '
    set -x ;;
esac
TRACE
grep -q '^SetEnv BASH_ENV' /etc/ssh/sshd_config || echo 'SetEnv BASH_ENV=/root/fdeploy-trace.sh' >>/etc/ssh/sshd_config
systemctl reload ssh`);
    const sections: string[] = [];
    for (const kind of ["code-only change", "no-op up"] as const) {
      const tag = kind === "no-op up" ? undefined : `profile-${Date.now()}`;
      if (tag) setMarker(d.app.dir, tag);
      d.server.ssh("rm -f /var/log/fdeploy-trace/*.log");
      const slug = kind.split(" ")[0];
      const hookOut = path.join(dir, `${slug}-node-processes.jsonl`);
      const env = { ...d.stack.env, NODE_OPTIONS: `--require ${path.join(__dirname, "speed-hook.js")}`, FDEPLOY_SPEED_PROFILE: hookOut };
      const t0 = Date.now();
      const r = must(await timed("pulumi", [...upArgs(d.stack), "-v=9", "--logtostderr", "--logflow"], { env, logName: `profile-${slug}` }), `profiled ${kind}`);
      const t1 = Date.now();
      if (tag) expectServed(d.server.host, tag, null, `profiled ${kind}`);
      // the -v=9 log (JSON lines) holds the stack's secrets: only the lines used below are kept, and
      // the rest of the output (Pulumi's normal display) goes to logs/
      const KEEP = /Launching plugin|RegisterResource received|applying step|retired/;
      const engine: { t: number; msg: string }[] = [];
      const display: string[] = [];
      for (const l of r.output.split("\n")) {
        if (!l.startsWith('{"time":')) { display.push(l); continue; }
        try {
          const j = JSON.parse(l);
          engine.push({ t: Date.parse(String(j.time).replace(/(\.\d{3})\d*Z$/, "$1Z")), msg: String(j.msg) });
        } catch { /* a line cut short */ }
      }
      const kept = [engine[0], ...engine.filter((e) => KEEP.test(e.msg) && !/step same /.test(e.msg)), engine[engine.length - 1]].filter(Boolean);
      fs.writeFileSync(path.join(dir, `${slug}-engine.log`), kept.map((e) => `${new Date(e.t).toISOString()} ${e.msg.slice(0, 300)}`).join("\n") + "\n");
      fs.writeFileSync(path.join(WORK, "logs", `profile-${slug}.log`), display.join("\n"));
      const traces = d.server.ssh("cd /var/log/fdeploy-trace && for f in *.log; do [ -f \"$f\" ] && { echo \"== $f\"; cat \"$f\"; }; done; echo '== sshd'; " +
        `journalctl -u ssh -o short-unix --no-pager --since=@${Math.floor(t0 / 1000)} | grep -E 'Accepted' || true`);
      fs.writeFileSync(path.join(dir, `${slug}-server-trace.log`), traces);
      const nodes = fs.existsSync(hookOut) ? fs.readFileSync(hookOut, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : [];
      sections.push(renderProfile(kind, { t0, t1, engine: kept, traces, nodes }));
      log(`profile of a ${kind}: ${((t1 - t0) / 1000).toFixed(2)} s`);
    }
    d.server.ssh("sed -i '/^SetEnv BASH_ENV/d' /etc/ssh/sshd_config; systemctl reload ssh");
    fs.writeFileSync(path.join(RESULTS, "speed-profile.md"), [
      "# Profiles: one code-only deploy, one no-op up", "",
      "Written by `npm run bench:speed -- --profile` (bench/speed.ts).", "", provenanceLine(provenanceEnd(prov, ours)), "",
      "Times in seconds from the start of `pulumi up`: the engine's " +
      "from its -v=9 log, the Node.js processes' from bench/speed-hook.js, the server's from its scripts' xtrace (one clock: the " +
      "test server is a container on this kernel). The code-only change follows a code-only change, as in the benchmark's code case.", "",
      ...sections].join("\n"));
    log(`written bench/results/speed-profile.md (raw: ${path.relative(process.cwd(), dir)})`);
  } finally {
    d.stack.remove();
    stopServer(d.server.name);
  }
}

function renderProfile(kind: string, p: { t0: number; t1: number; engine: { t: number; msg: string }[]; traces: string; nodes: any[] }): string {
  const rel = (t: number) => ((t - p.t0) / 1000).toFixed(2);
  const events: [number, string][] = [];
  const all = (re: RegExp) => p.engine.filter((e) => re.test(e.msg));
  if (p.engine.length) events.push([p.engine[0].t, "first engine log line (the CLI runs)"]);
  for (const e of all(/Launching plugin/)) events.push([e.t, `plugin launched: ${/Launching plugin '([^']+)'/.exec(e.msg)?.[1] ?? "?"}`]);
  const regs = all(/RegisterResource received/);
  if (regs.length) {
    events.push([regs[0].t, `engine: first resource registered by the program (of ${regs.length}: ${/name=([^,]+)/.exec(regs[0].msg)?.[1]})`]);
    if (regs.length > 1) events.push([regs[1].t, `engine: second resource registered (${/name=([^,]+)/.exec(regs[1].msg)?.[1]}): the program's own code runs`]);
    events.push([regs[regs.length - 1].t, `engine: last resource registered (${/name=([^,]+)/.exec(regs[regs.length - 1].msg)?.[1]})`]);
  }
  // steps: applying -> retired, by URN
  const steps: { name: string; op: string; start: number; end?: number }[] = [];
  for (const e of all(/applying step|retired/)) {
    const m = /step (\S+) on (\S+)/.exec(e.msg);
    if (!m || m[1] === "same" || /pulumi:pulumi:Stack|pulumi:providers/.test(m[2])) continue;
    const name = m[2].split("::").pop()!;
    if (/applying step/.test(e.msg)) steps.push({ name, op: m[1], start: e.t });
    else {
      const st = steps.find((x) => x.name === name && x.op === m[1] && x.end === undefined);
      if (st) st.end = e.t;
    }
  }
  if (steps.length) {
    events.push([steps[0].start, `first step applied (${steps[0].name})`]);
    events.push([Math.max(...steps.map((x) => x.end ?? x.start)), "last step retired"]);
  }
  for (const n of p.nodes) {
    const what = n.argv.trim() ? n.argv.replace(/^.*node_modules\//, "") : "(node -e: the language host's helper)";
    events.push([n.processStart, `node process started: ${what}`]);
    for (const [mod, v] of Object.entries<any>(n.requires)) events.push([v.start + v.ms, `  (pid ${n.pid}) require('${mod}') took ${v.ms} ms`]);
    if (n.exit) events.push([n.exit, `node process exited: ${what}`]);
  }
  if (p.engine.length) events.push([p.engine[p.engine.length - 1].t, "last engine log line"]);
  events.push([p.t1, "`pulumi up` exited"]);
  events.sort((a, b) => a[0] - b[0]);

  // the server: each traced script process, first and last traced line
  const scripts: { file: string; start: number; end: number; slow: [number, string][] }[] = [];
  for (const block of p.traces.split("\n== ").slice(0)) {
    const [head, ...body] = block.replace(/^== /, "").split("\n");
    if (!head.endsWith(".log")) continue;
    const lines = body.map((l) => /^\++ (\d+\.\d+) (\S+) ?(.*)$/.exec(l)).filter(Boolean) as RegExpExecArray[];
    if (!lines.length) continue;
    const t = lines.map((m) => Number(m[1]) * 1000);
    const slow: [number, string][] = [];
    for (let i = 0; i + 1 < lines.length; i++) slow.push([t[i + 1] - t[i], `${lines[i][2]} ${lines[i][3].slice(0, 90)}`]);
    slow.sort((a, b) => b[0] - a[0]);
    scripts.push({ file: head.replace(/^[\d.]+-\d+-/, "").replace(/\.log$/, ""), start: t[0], end: t[t.length - 1], slow: slow.slice(0, 3) });
  }
  scripts.sort((a, b) => a.start - b.start);
  const sshd = p.traces.split("== sshd\n")[1]?.trim().split("\n").filter((l) => /Accepted/.test(l)).map((l) => Number(l.split(" ")[0]) * 1000) ?? [];

  const L: string[] = [];
  L.push(`## ${kind}: ${((p.t1 - p.t0) / 1000).toFixed(2)} s`, "");
  // where the time goes: consecutive phases of the up, from the marks above
  const launches = all(/Launching plugin 'nodejs'/).map((e) => e.t);
  const run = p.nodes.find((n) => /cmd\/run/.test(n.argv));
  const stepStart = steps.length ? steps[0].start : undefined;
  const stepEnd = steps.length ? Math.max(...steps.map((x) => x.end ?? x.start)) : undefined;
  const marks: [string, number | undefined][] = [
    ["start of `pulumi up` (spawned)", p.t0],
    ["the language host launched for the run", launches[launches.length - 1]],
    ["the program's Node.js process started", run?.processStart],
    ["the program's resources reach the engine (2nd registration)", regs[1]?.t],
    ["the dynamic-resource provider launched (pulumi-nodejs)", all(/Launching plugin 'pulumi-nodejs/)[0]?.t],
    ["the command plugin launched", all(/Launching plugin 'command/)[0]?.t],
    ...(stepStart !== undefined ? [["the first changing step applied", stepStart], ["the last step retired", stepEnd]] as [string, number | undefined][] : []),
    ["`pulumi up` exited", p.t1],
  ];
  const known = (marks.filter((m) => m[1] !== undefined) as [string, number][]).sort((a, b) => a[1] - b[1]);
  L.push("| phase | s |", "|---|---:|");
  for (let i = 0; i + 1 < known.length; i++) L.push(`| ${known[i][0]} → ${known[i + 1][0]} | ${((known[i + 1][1] - known[i][1]) / 1000).toFixed(2)} |`);
  const scriptSum = scripts.reduce((a, x) => a + (x.end - x.start), 0) / 1000;
  if (scripts.length) L.push("", `The remote scripts themselves ran ${scriptSum.toFixed(2)} s in all (${scripts.map((x) => `${x.file} ${((x.end - x.start) / 1000).toFixed(2)}`).join(", ")}).`);
  L.push("");
  L.push("### Timeline", "", "| t (s) | event |", "|---:|---|");
  for (const [t, e] of events) L.push(`| ${rel(t)} | ${e.replace(/\|/g, "\\|")} |`);
  L.push("", "### Steps (engine: applying → retired) and their scripts on the server", "");
  L.push("| step | op | start | end | engine s | script on the server | script s | engine − script (SSH, plugin) |", "|---|---|---:|---:|---:|---|---:|---:|");
  for (const s of steps.sort((a, b) => a.start - b.start)) {
    const sc = scripts.find((x) => x.start >= s.start && x.start <= (s.end ?? Infinity) && !(x as any).used);
    if (sc) (sc as any).used = true;
    const dur = s.end !== undefined ? (s.end - s.start) / 1000 : undefined;
    const sd = sc ? (sc.end - sc.start) / 1000 : undefined;
    L.push(`| ${s.name} | ${s.op} | ${rel(s.start)} | ${s.end !== undefined ? rel(s.end) : "?"} | ${dur?.toFixed(2) ?? "?"} | ` +
      `${sc ? sc.file : "(none: an upload, or no script)"} | ${sd?.toFixed(2) ?? ""} | ${dur !== undefined && sd !== undefined ? (dur - sd).toFixed(2) : ""} |`);
  }
  L.push("", "### Scripts on the server: the slowest lines", "", "| script | start | s | slowest traced lines (s until the next line) |", "|---|---:|---:|---|");
  for (const s of scripts) {
    L.push(`| ${s.file} | ${rel(s.start)} | ${((s.end - s.start) / 1000).toFixed(2)} | ${s.slow.map(([ms, l]) => `${(ms / 1000).toFixed(2)}: \`${l.replace(/[|`]/g, " ")}\``).join("<br>")} |`);
  }
  L.push("", `SSH connections accepted by the server during the up: ${sshd.length} (at ${sshd.map(rel).join(", ")} s).`, "");
  return L.join("\n");
}

// ---------------------------------------------------------------------------------- results
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { min: s[0], median, max: s[s.length - 1] };
};

interface Row { id: CaseId; label: string; timed: string; floor?: CaseId[]; goal?: number }
const ROWS: Row[] = [
  { id: "floor-a", label: "floor A: empty program `up`", timed: "`pulumi up` of bench/speed-empty (no resources; typescript, noCheck tsconfig; file backend)" },
  { id: "floor-b", label: "floor B: bare ssh code deploy", timed: "`tar -c` piped into `ssh` (pinned host key): `tar -x` into a folder + `systemctl restart` + until the new code answers: one SSH session" },
  { id: "floor-c", label: "floor C: pip install of six alone", timed: "`pip install six==1.17.0` into an existing venv on the server (time inside the server)" },
  { id: "no-op", label: "no-op up", timed: "`pulumi up` of this project, nothing changed", floor: ["floor-a"], goal: 1.3 },
  { id: "code", label: "code-only change", timed: "one line of wsgi.py changed -> `pulumi up` (new code live, checked)", floor: ["floor-a", "floor-b"], goal: 1.5 },
  { id: "dependency", label: "dependency change", timed: "six==1.17.0 added to requirements.txt (+ the code line) -> `pulumi up`", floor: ["floor-a", "floor-b", "floor-c"], goal: 2 },
  { id: "dependency-bump", label: "dependency bump", timed: "six==1.16.0 -> six==1.17.0 in requirements.txt (+ the code line) -> `pulumi up` (a venv from nothing; the 1.16.0 up before it untimed)" },
  { id: "dependency-removal", label: "dependency removal", timed: "six==1.17.0 removed from requirements.txt (+ the code line) -> `pulumi up` (a venv from nothing)" },
  { id: "rollback", label: "rollback", timed: "`npm run rollback -- --stack …` (one step back; `--forward` after it untimed)", floor: ["floor-a", "floor-b"], goal: 2 },
  { id: "ansible-code", label: "Ansible code deploy", timed: "bench/ansible/deploy.yml after the same code change" },
  { id: "ansible-dependency", label: "Ansible dependency deploy", timed: "bench/ansible/deploy.yml after the same dependency change" },
  { id: "ansible-dependency-bump", label: "Ansible dependency bump", timed: "bench/ansible/deploy.yml after the same bump (pip upgrades six in its one venv)" },
  { id: "ansible-dependency-removal", label: "Ansible dependency removal", timed: "bench/ansible/deploy.yml after the same removal (its pip module leaves six installed)" },
  { id: "ansible-tuned-code", label: "tuned Ansible code deploy", timed: "bench/ansible/deploy-tuned.yml after the same code change (a new release, Gunicorn HUP)" },
  { id: "ansible-tuned-dependency", label: "tuned Ansible dependency deploy", timed: "bench/ansible/deploy-tuned.yml after the same dependency change (a new venv, Gunicorn restart)" },
  { id: "ansible-tuned-dependency-bump", label: "tuned Ansible dependency bump", timed: "bench/ansible/deploy-tuned.yml after the same bump (a new venv from nothing, Gunicorn restart)" },
  { id: "ansible-tuned-dependency-removal", label: "tuned Ansible dependency removal", timed: "bench/ansible/deploy-tuned.yml after the same removal (a new venv from nothing, Gunicorn restart)" },
];

const fmt = (x: number) => x.toFixed(2);
const ratio = (x: number) => `${x.toFixed(1)}×`;

/** What the rows R say of their runs together: commits, dates, 1-min load range, other test servers up. */
export function rowsProvenance(r: (CaseResult | undefined)[]): string {
  const rows = r.filter((x): x is CaseResult => !!x);
  if (!rows.length) return "no case measured";
  const uniq = (xs: string[]) => [...new Set(xs)].sort();
  const dates = rows.map((x) => x.date).sort();
  const loads = rows.flatMap((x) => [x.loadBefore[0], x.loadAfter[0]]);
  const others = uniq(rows.flatMap((x) => x.otherServers));
  const [first, last] = [dates[0], dates[dates.length - 1]].map((d) => d.slice(0, 16).replace("T", " "));
  const when = first.slice(0, 10) === last.slice(0, 10) ? `${first}–${last.slice(11)}` : `${first} – ${last}`;
  return `commit ${uniq(rows.map((x) => `\`${x.commit.slice(0, 12)}\``)).join(", ")}, ${when} UTC; load average (1 min) ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} over its runs; ` +
    `other test servers up: ${others.length ? others.join(", ") : "none"}`;
}

export function renderMarkdown(raw: { machine?: any; provenance?: Provenance; cases: Partial<Record<CaseId, CaseResult>> }): string {
  const c = raw.cases;
  const med = (id: CaseId) => (c[id] ? stats(c[id]!.seconds).median : undefined);
  const lines: string[] = [];
  lines.push("# Speed: a deploy against the floors the machine allows, and against Ansible", "");
  lines.push("Written by `npm run bench:speed` (bench/speed.ts; bench/README.md, \"Speed\"). Each case: wall seconds of its timed runs,",
    "min / median / max; ratios are of medians. The runs go in rounds (every case once per round), so load swings weigh on",
    "cases and floors alike. Cases can be re-run alone (`--only`): each row below says when it ran and the machine's load.", "");
  lines.push(raw.provenance ? `Last run (the cases it ran; the others keep their own, below). ${provenanceLine(raw.provenance)}`
    : `- **the run**: ${rowsProvenance(Object.values(c))} (from its rows below: the run as a whole was not recorded, it predates issue #27).`, "");
  lines.push("| case | runs | s (min / median / max) | floor (median s) | goal | ratio |", "|---|---:|---:|---|---|---:|");
  for (const row of ROWS) {
    const r = c[row.id];
    const s = r ? stats(r.seconds) : undefined;
    const cells = [row.label, r ? String(r.seconds.length) : "0", s ? `${fmt(s.min)} / **${fmt(s.median)}** / ${fmt(s.max)}` : "not measured"];
    if (row.floor) {
      const parts = row.floor.map((f) => med(f));
      const floor = parts.every((p) => p !== undefined) ? parts.reduce((a, b) => a! + b!, 0)! : undefined;
      cells.push(`${row.floor.map((f) => f.replace("floor-", "")).join(" + ")}${floor !== undefined ? ` = ${fmt(floor)}` : " (not measured)"}`);
      const x = s && floor ? s.median / floor : undefined;
      cells.push(`≤ ${row.goal!.toFixed(1)}× ${x === undefined ? "" : x <= row.goal! ? "✓ met" : "✗ not met"}`);
      cells.push(x === undefined ? "n/a" : ratio(x));
    } else {
      cells.push(row.id.startsWith("floor") ? "(a floor)" : row.id.startsWith("ansible") ? "(the peer)" : "(no goal)", "", "");
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  const peer = (ours: CaseId, theirs: CaseId, label: string, goal?: number) => {
    const a = med(ours), b = med(theirs);
    const x = a !== undefined && b !== undefined ? a / b : undefined;
    lines.push(`| ${label} | | ${a !== undefined ? fmt(a) : "?"} vs ${b !== undefined ? fmt(b) : "?"} | ${theirs.includes("tuned") ? "tuned" : "conventional"} Ansible's | ` +
      `${goal ? `≤ ${goal.toFixed(1)}× ${x === undefined ? "" : x <= goal ? "✓ met" : "✗ not met"}` : "(no goal)"} | ${x === undefined ? "n/a" : ratio(x)} |`);
  };
  // the goal compares with the tuned peer; the conventional one is shown beside it
  peer("code", "ansible-tuned-code", "code-only change vs tuned Ansible code deploy", 0.5);
  peer("dependency", "ansible-tuned-dependency", "dependency change vs tuned Ansible dependency deploy");
  peer("dependency-bump", "ansible-tuned-dependency-bump", "dependency bump vs tuned Ansible dependency bump");
  peer("dependency-removal", "ansible-tuned-dependency-removal", "dependency removal vs tuned Ansible dependency removal");
  peer("code", "ansible-code", "code-only change vs conventional Ansible code deploy");
  peer("dependency", "ansible-dependency", "dependency change vs conventional Ansible dependency deploy");
  peer("dependency-bump", "ansible-dependency-bump", "dependency bump vs conventional Ansible dependency bump");
  peer("dependency-removal", "ansible-dependency-removal", "dependency removal vs conventional Ansible dependency removal");
  lines.push("");
  lines.push("## What each case times", "");
  lines.push("| case | timed | when (UTC) | commit | load avg (1 min) at its runs: min / median / max | load avg (1 / 5 / 15 min) at its start → end | other test servers up |", "|---|---|---|---|---|---|---|");
  for (const row of ROWS) {
    const r = c[row.id];
    const loads = (r?.details ?? []).map((x: any) => x.load1).filter((x: unknown) => typeof x === "number") as number[];
    const load = loads.length ? (({ min, median, max }) => `${min.toFixed(1)} / ${median.toFixed(1)} / ${max.toFixed(1)}`)(stats(loads))
      : r ? `${r.loadBefore[0].toFixed(2)} → ${r.loadAfter[0].toFixed(2)}` : "—";
    const startEnd = r ? `${r.loadBefore.map((x) => x.toFixed(2)).join(" / ")} → ${r.loadAfter.map((x) => x.toFixed(2)).join(" / ")}` : "—";
    lines.push(`| ${row.label} | ${row.timed} | ${r ? r.date.slice(0, 16).replace("T", " ") : "—"} | ${r ? r.commit.slice(0, 7) + (r.commit.endsWith("+dirty") ? " + uncommitted edits" : "") : "—"} | ` +
      `${load} | ${startEnd} | ${r ? (r.otherServers.length ? r.otherServers.join(", ") : "none") : "—"} |`);
  }
  lines.push("");
  if (raw.machine) {
    const m = raw.machine;
    lines.push(`Machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, Pulumi ${m.pulumi}, ` +
      `ansible-core ${m.ansibleCore}. The test servers run on the same machine (systemd-nspawn), so a server's work (pip, Gunicorn) ` +
      "and the deploy tool share its CPUs — as do other engineers' tests running meanwhile (the load column).", "");
  }
  lines.push("Raw runs: `bench/results/speed.json`.", "");
  return lines.join("\n");
}

// -------------------------------------------------------------------------------------- main
const ours = (n: string) => n.startsWith(SERVER.name) || OUR_SERVERS.includes(n);

async function main(): Promise<void> {
  for (const id of ONLY) if (!(CASES as readonly string[]).includes(id)) throw new Error(`--only: unknown case '${id}' (cases: ${CASES.join(", ")})`);
  if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error("--runs: expected 1..50");
  const ids = CASES.filter((id) => ONLY.includes(id));
  const jsonPath = path.join(RESULTS, "speed.json");
  const raw: { machine?: any; provenance?: Provenance; cases: Partial<Record<CaseId, CaseResult>> } =
    fs.existsSync(jsonPath) ? JSON.parse(fs.readFileSync(jsonPath, "utf8")) : { cases: {} };
  raw.machine = machine();
  const prov = provenanceStart(ours, PROJECT_DIR);
  const rev = commitOf(PROJECT_DIR);
  const save = () => {
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(jsonPath, JSON.stringify(raw, null, 1) + "\n");
    fs.writeFileSync(path.join(RESULTS, "speed.md"), renderMarkdown(raw));
  };

  if (ids.some((id) => id.startsWith("ansible"))) {
    const v = spawnSync("bash", [path.join(__dirname, "venv.sh")], { stdio: "inherit" });
    if (v.status !== 0) throw new Error("bench/venv.sh failed");
  }
  for (const dep of new Set([DEP, SPEED_DEP.bumpFrom, SPEED_DEP.bumpTo])) {
    const [name, v] = dep.split("==");
    if (fs.existsSync(path.join(process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy", "servers", "wheelhouse", `${name}-${v}-py2.py3-none-any.whl`))) continue;
    const req = path.join(WORK, "dep.txt");
    fs.writeFileSync(req, `${dep}\n`);
    addWheels(req);
  }

  const cleanups: (() => void)[] = [];
  try {
    // untimed setup of every case selected: stacks, servers, initial deploys
    const runners: Partial<Record<CaseId, Runner>> = {};
    if (ids.includes("floor-a")) runners["floor-a"] = await floorA(cleanups);
    if (ids.some((id) => ["floor-b", "floor-c", "no-op", "code", "dependency", "dependency-bump", "dependency-removal", "rollback"].includes(id))) {
      log(`${SERVER.name}: booting 10.213.0.${SERVER.octet} and deploying the sample app (not timed)`);
      const d = deployFresh(SERVER.name, SERVER.octet);
      cleanups.push(() => { d.stack.remove(); stopServer(d.server.name); });
      setMarker(d.app.dir, "initial");
      must(await timed("pulumi", upArgs(d.stack), { env: d.stack.env, logName: "initial-marker" }), "deploying the marker route");
      expectServed(d.server.host, "initial", null, "initial deploy");
      if (ids.includes("floor-b")) runners["floor-b"] = await floorB(d.server, d.app.dir);
      if (ids.includes("floor-c")) runners["floor-c"] = await floorC(d.server);
      Object.assign(runners, pulumiCases(d));
    }
    for (const [peer, srv, prefix] of [["deploy.yml", ANSIBLE_SERVER, "ansible-"], ["deploy-tuned.yml", TUNED_SERVER, "ansible-tuned-"]] as const) {
      if (!ids.some((id) => id.startsWith(prefix) && (prefix === "ansible-tuned-" || !id.startsWith("ansible-tuned-")))) continue;
      log(`${srv.name}: booting 10.213.0.${srv.octet}`);
      const server = startServer(srv.name, srv.octet);
      cleanups.push(() => { fs.rmSync(path.join(WORK, "ansible", server.name, "vars.json"), { force: true }); stopServer(server.name); });
      Object.assign(runners, await ansibleCases(server, peer));
    }

    // the timed runs, interleaved: round i runs every case once (in CASES order), so that the
    // machine's load, which other work changes from minute to minute, weighs on every case alike
    const order = ids.map((id) => runners[id]!);
    const done: Partial<Record<CaseId, CaseResult>> = {};
    for (let i = 1; i <= RUNS; i++) {
      log(`== round ${i}/${RUNS} (load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")})`);
      for (const r of order) {
        const load1 = os.loadavg()[0], loadBefore = os.loadavg().map(round2), date = new Date().toISOString();
        const res = await r.run(i);
        const c = (done[r.id] ??= { id: r.id, seconds: [], date, commit: rev, loadBefore,
          loadAfter: [], otherServers: otherServers(SERVER.name).filter((n) => !OUR_SERVERS.includes(n)), details: [] });
        c.seconds.push(round2(res.seconds));
        c.details!.push({ run: i, load1: round2(load1), ...(res.detail ?? {}) });
        c.loadAfter = os.loadavg().map(round2);
        for (const s of otherServers(SERVER.name).filter((n) => !OUR_SERVERS.includes(n))) if (!c.otherServers.includes(s)) c.otherServers.push(s);
        log(`${r.id} run ${i}: ${res.seconds.toFixed(2)} s`);
      }
    }
    // merged: the cases run now replace their rows, the others stay
    for (const id of ids) raw.cases[id] = done[id];
    raw.provenance = provenanceEnd(prov, ours);
    save();
  } finally {
    for (const c of cleanups.reverse()) {
      try { c(); } catch (e) { console.error(e); }
    }
  }
  log(`written: ${path.relative(process.cwd(), jsonPath)}, bench/results/speed.md`);
  console.log("\n" + renderMarkdown(raw));
}

if (require.main === module) {
  if (process.argv.includes("--render")) {   // speed.md again from speed.json (no run)
    const json = JSON.parse(fs.readFileSync(path.join(RESULTS, "speed.json"), "utf8"));
    fs.writeFileSync(path.join(RESULTS, "speed.md"), renderMarkdown(json));
    process.exit(0);
  }
  (process.argv.includes("--profile") ? profile() : main()).catch((e) => {
    console.error(e);
    stopAll();
    process.exit(1);
  }).then(() => stopAll());
}
