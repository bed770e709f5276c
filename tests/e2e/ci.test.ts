// The CI pipelines `flask-deploy init --ci github|gitlab` writes, run unchanged by local runners: act
// v0.2.89 (self-hosted mode: the steps run on this machine, as on a self-hosted runner) and
// gitlab-ci-local 4.70.1 (shell executor), both from toolchain/ci-tools.sh. The user's repository is
// a temporary git repo holding the sample app and the packed package (vendor/, as `npm pack` makes it),
// with init's program and pipelines; the state is in an S3-compatible bucket (versitygw on loopback);
// the secrets reach the runners from 0600 files (act --secret-file, gitlab-ci-local's variables file),
// never a command line; one test server (ci-deploy, 10.213.0.186). In order:
//   1. a pull request (act pull_request): the preview of dev and prod runs (one preview --json each),
//      its summary names the change (the new release replacing the live one, the migration to apply)
//      and its log the changing steps, the server's sshd sees no connection (0 logins, 0 attempts);
//   2. the merge (act push): dev deploys under load, 0 failed requests, the app serves the new code;
//   3. gitlab-ci-local deploy-dev: the same for the next commit, while a second pipeline (act push)
//      fails at once on the state backend's stack lock, naming the first.
// Time: 198 s (223 s with mocha and the server) at load 6 on 2 shared cores, 411 s at load 13; README "Deploy from CI".
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { tempDir } from "../tmpdir";
import { startLoad } from "./load";
import { PROJECT_DIR } from "./pulumi";

const CACHE = process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy";
const CHECKOUT = path.resolve(PROJECT_DIR, "..", "shared/upstream/actions/checkout");
const SERVER = "ci-deploy", OCTET = 186;
const APP = "notes";
const GATE = `/srv/${APP}/shared/db/ci-gate`;

interface Run { status: number; output: string; ms: number }

/** The runners still running: after() stops them (a failed case must not leave a deploy going). */
const running = new Set<ChildProcess>();

/** ARGV in CWD with ENV, in a process group of its own, without blocking the event loop (the load runs meanwhile). */
function runAsync(argv: string[], cwd: string, env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<Run> } {
  const t0 = Date.now();
  const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  running.add(child);
  child.on("close", () => running.delete(child));
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  // without colours: the runners' and Pulumi's ANSI codes split the words the tests look for
  const done = new Promise<Run>((resolve) => child.on("close", (code) =>
    resolve({ status: code ?? -1, output: output.replace(/\x1b\[[0-9;]*m/g, ""), ms: Date.now() - t0 })));
  return { child, done };
}

/** Whether process PID is (a descendant of) ANCESTOR, by its parents in /proc. */
function descends(pid: number, ancestor: number): boolean {
  for (let p = pid; p > 1;) {
    if (p === ancestor) return true;
    try { p = Number(fs.readFileSync(`/proc/${p}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")[1]); } catch { return false; }
  }
  return false;
}

const tail = (s: string, n = 80) => s.split("\n").slice(-n).join("\n");
/** act's step times ("npm dependencies 12.3s; …") for the log: where a run's time goes. */
const stepTimes = (output: string) => [...output.matchAll(/^\[[^\]/]+\/([^\]]+)\]\s+✅\s+Success - Main (.+?) \[([\d.]+)(m?s)\]$/gm)]
  .map((m) => `${m[1]}: ${m[2]} ${m[4] === "s" ? Number(m[3]).toFixed(0) : (Number(m[3]) / 1000).toFixed(0)} s`).join("; ");
const secs = (ms: number) => `${(ms / 1000).toFixed(0)} s`;

/** A port nothing listens on now (for versitygw on loopback). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    }).on("error", reject);
  });
}

/**
 * The package as `npm publish` would upload it, made without touching this tree's dist/ (the package
 * suite packs this tree at the same time): tsc into a staging folder that holds package.json's files.
 */
function packPackage(dest: string): string {
  const stage = path.join(tempDir("ci-pack-"), "flask-deploy");
  const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "package.json"), "utf8"));
  for (const f of pkg.files as string[]) {
    if (f.startsWith("!") || f.startsWith("dist/")) continue;
    fs.cpSync(path.join(PROJECT_DIR, f), path.join(stage, f), { recursive: true, filter: (s) => !s.includes("__pycache__") });
  }
  fs.copyFileSync(path.join(PROJECT_DIR, "package.json"), path.join(stage, "package.json"));
  execFileSync("npx", ["tsc", "-p", path.join(PROJECT_DIR, "tsconfig.build.json"), "--outDir", path.join(stage, "dist")], { cwd: PROJECT_DIR, stdio: "pipe" });
  const out = execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", dest, "--json", "--loglevel=error"], { cwd: stage, encoding: "utf8" });
  return path.join(dest, JSON.parse(out)[0].filename);
}

describe("CI: the pipelines init --ci writes, run by act and gitlab-ci-local", function () {
  this.timeout(900000);
  const t0 = Date.now();
  let server: TestServer;
  let tmp: string, project: string, s3Dir: string;
  let versitygw: ChildProcess, agent: ChildProcess;
  let act: string, gitlab: string;
  let env: NodeJS.ProcessEnv;        // the harness's: the S3 backend, passphrase, an ssh-agent with the key
  let runnerEnv: NodeJS.ProcessEnv;  // a runner's: no Pulumi backend, passphrase, cloud keys or agent of ours
  let actArgs: string[];
  let firstRelease: string, prRelease: string;
  const passphrase = crypto.randomBytes(16).toString("hex");
  const s3 = { key: "fdeployci", secret: crypto.randomBytes(16).toString("hex") };

  const git = (...args: string[]) => execFileSync("git", args, { cwd: project, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  const run = (argv: string[], input?: string) => {
    const r = spawnSync(argv[0], argv.slice(1), { cwd: project, env, encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
    const output = (r.stdout ?? "") + (r.stderr ?? "");
    if (r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status}):\n${tail(output)}`);
    return r.stdout ?? "";
  };
  const outputs = () => JSON.parse(run(["pulumi", "stack", "output", "--json", "--stack", "dev", "--non-interactive"]));
  /**
   * The connections the server's sshd logged, read without SSH (nsenter): [logins, all lines naming a
   * client's address and port — a login, a failed or closed attempt, a disconnect].
   */
  const sshd = (): [number, number] => execFileSync("bash", [path.join(PROJECT_DIR, "tests/servers/testserver.sh"), "sh", SERVER, "bash", "-c",
    "l=$(journalctl -u ssh -o cat --no-pager); echo \"$l\" | grep -c '^Accepted publickey'; " +
    "echo \"$l\" | grep -E '([0-9]+\\.){3}[0-9]+ port [0-9]+' | grep -vc '^Server listening' || true"], { encoding: "utf8" })
    .trim().split("\n").map(Number) as [number, number];
  const page = (p: string) => new Promise<{ status: number; text: string }>((resolve, reject) => {
    http.get({ host: server.host, port: 80, path: p, headers: { connection: "close" }, timeout: 10000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    }).on("error", reject);
  });
  const commit = (message: string) => { git("add", "-A"); git("commit", "-q", "-m", message); };
  const editApp = (from: string, to: string) => {
    const f = path.join(project, "app/notes/__init__.py");
    const text = fs.readFileSync(f, "utf8");
    assert.ok(text.includes(from), from);
    fs.writeFileSync(f, text.replace(from, to));
  };
  /** act EVENT of WORKFLOW (JOB: one job only), as the user's repository's runner would run it. */
  const actRun = (event: string, workflow: string, extra: string[] = []) =>
    runAsync([act, event, "-W", `.github/workflows/${workflow}`, ...actArgs, ...extra], project, runnerEnv);
  const gitlabRun = (job: string) =>
    runAsync([gitlab, "--force-shell-executor", "--shell-isolation", "--variables-file", ".gitlab-ci-local-variables.yml",
      "--color=false", job], project, runnerEnv);
  /** No secret of the pipelines in a runner's log. */
  const noSecrets = (output: string) => {
    for (const [name, s] of [["the SSH key", "PRIVATE KEY-----"], ["the passphrase", passphrase], ["the S3 secret", s3.secret]]) {
      assert.ok(!output.includes(s), `${name} in the runner's log`);
    }
  };

  before(async () => {
    const tb = Date.now();
    act = execFileSync("bash", [path.join(PROJECT_DIR, "toolchain/ci-tools.sh"), "path", "act"], { encoding: "utf8" }).trim();
    gitlab = execFileSync("bash", [path.join(PROJECT_DIR, "toolchain/ci-tools.sh"), "path", "gitlab-ci-local"], { encoding: "utf8" }).trim();
    assert.ok(fs.existsSync(path.join(CHECKOUT, "action.yml")), `actions/checkout's files: ${CHECKOUT}`);
    server = startServer(SERVER, OCTET);
    tmp = tempDir("ci-");

    // the state: an S3-compatible bucket (versitygw, posix backend) on loopback
    const vdir = path.join(CACHE, "versitygw");
    const bin = fs.existsSync(vdir) ? fs.readdirSync(vdir).map((v) => path.join(vdir, v, "versitygw")).find((f) => fs.existsSync(f)) : undefined;
    assert.ok(bin, "no versitygw build: bash toolchain/versitygw.sh (scripts/setup.sh runs it)");
    s3Dir = path.join(tmp, "s3");
    fs.mkdirSync(s3Dir);
    const port = await freePort();
    versitygw = spawn(bin!, ["--port", `127.0.0.1:${port}`, "posix", s3Dir], {
      env: { ...process.env, ROOT_ACCESS_KEY_ID: s3.key, ROOT_SECRET_ACCESS_KEY: s3.secret }, stdio: "ignore",
    });
    let put = "";
    for (let i = 0; i < 50 && put !== "200"; i++) {
      if (i) await new Promise((r) => setTimeout(r, 200));
      put = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", `${s3.key}:${s3.secret}`,
        "-X", "PUT", "-H", "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        `http://127.0.0.1:${port}/state`], { encoding: "utf8" }).stdout;
    }
    assert.strictEqual(put, "200", "versitygw: create the bucket");
    const backend = `s3://state?endpoint=http://127.0.0.1:${port}&use_path_style=true`;

    // the user's repository: the sample app and its migrations, the packed package in vendor/, init --ci github and gitlab
    project = path.join(tmp, APP);
    fs.mkdirSync(project);
    for (const d of ["app", "migrations"]) {
      fs.cpSync(path.join(PROJECT_DIR, d), path.join(project, d), { recursive: true, filter: (s) => !s.includes("__pycache__") });
    }
    fs.mkdirSync(path.join(project, "vendor"));
    const tarball = packPackage(path.join(project, "vendor"));
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
      !/^(PULUMI_BACKEND_URL|PULUMI_CONFIG_PASSPHRASE|PULUMI_CONFIG_PASSPHRASE_FILE|PULUMI_ACCESS_TOKEN|AWS_.*|SSH_AUTH_SOCK|SSH_AGENT_PID|FDEPLOY_.*)$/.test(k)));
    runnerEnv = { ...clean, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false", npm_config_prefer_offline: "true" };
    const sock = path.join(tmp, "agent.sock");
    agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
    for (let i = 0; i < 50 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    env = { ...runnerEnv, PULUMI_BACKEND_URL: backend, PULUMI_CONFIG_PASSPHRASE: passphrase, AWS_ACCESS_KEY_ID: s3.key,
      AWS_SECRET_ACCESS_KEY: s3.secret, AWS_REGION: "us-east-1", SSH_AUTH_SOCK: sock };
    run(["npm", "install", "--loglevel=error", `./vendor/${path.basename(tarball)}`]);
    for (const ci of ["github", "gitlab"]) run(["npx", "flask-deploy", "init", "--ci", ci]);
    run(["npm", "install", "--loglevel=error"]);   // what init added to package.json, into the lockfile npm ci needs
    for (const stack of ["dev", "prod"]) {
      run(["pulumi", "stack", "init", stack, "--non-interactive"]);
      // the server pinned by its host key; no privateKeyPath: the job's ssh-agent holds the key
      run(["pulumi", "config", "set", "--stack", stack, "--path", "flask-deploy:server.host"], server.host);
      run(["pulumi", "config", "set", "--stack", stack, "--path", "flask-deploy:server.hostKey"], server.hostKey);
      run(["pulumi", "config", "set", "--stack", stack, "--secret", "--path", "flask-deploy:secrets.SECRET_KEY"], `${stack}-ci-secret`);
    }
    git("init", "-q", "-b", "main");
    git("config", "user.email", "ci@example.test");
    git("config", "user.name", "ci");
    // act names the repository from origin (github.repository); gitlab-ci-local its default branch from origin/HEAD
    git("remote", "add", "origin", `https://github.com/example/${APP}.git`);
    for (const f of [".gitlab-ci-local/", ".gitlab-ci-local-variables.yml"]) fs.appendFileSync(path.join(project, ".git/info/exclude"), `${f}\n`);
    commit("notes, deployed by flask-deploy from CI");
    git("update-ref", "refs/remotes/origin/main", "HEAD");
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main");

    // the secrets: files only the runner's user reads
    const key = fs.readFileSync(server.keyPath, "utf8");
    const secrets = path.join(tmp, "secrets.env"), vars = path.join(tmp, "vars.env");
    fs.writeFileSync(secrets, [`PULUMI_CONFIG_PASSPHRASE=${passphrase}`, `AWS_ACCESS_KEY_ID=${s3.key}`, `AWS_SECRET_ACCESS_KEY=${s3.secret}`,
      `SSH_PRIVATE_KEY="${key.trim().replace(/\n/g, "\\n")}"`, ""].join("\n"), { mode: 0o600 });
    fs.writeFileSync(vars, [`PULUMI_BACKEND_URL="${backend}"`, "AWS_REGION=us-east-1", ""].join("\n"), { mode: 0o600 });
    fs.writeFileSync(path.join(project, ".gitlab-ci-local-variables.yml"), [
      `PULUMI_BACKEND_URL: ${JSON.stringify(backend)}`, "AWS_REGION: us-east-1", `AWS_ACCESS_KEY_ID: ${s3.key}`,
      `AWS_SECRET_ACCESS_KEY: ${s3.secret}`, `PULUMI_CONFIG_PASSPHRASE: ${passphrase}`,
      // a File variable scoped to the environment, as README "Deploy from CI" says
      "SSH_PRIVATE_KEY:", "  type: file", "  values:", "    dev: |", ...key.trim().split("\n").map((l) => `      ${l}`), "",
    ].join("\n"), { mode: 0o600 });
    actArgs = ["-P", "ubuntu-latest=-self-hosted", "--action-offline-mode", "--local-repository", `actions/checkout@v4=${CHECKOUT}`,
      "--secret-file", secrets, "--var-file", vars, "--action-cache-path", path.join(tmp, "a")];

    // the first deploy, from the harness (with the key in an ssh-agent, as the pipelines do)
    execFileSync("ssh-add", ["-q", server.keyPath], { env });
    const tu = Date.now();
    run(["pulumi", "up", "--yes", "--skip-preview", "--stack", "dev", "--non-interactive"]);
    firstRelease = outputs().releaseId;
    console.log(`      setup ${secs(tu - tb)} (tools, server, bucket, pack, npm install, init, stacks); first up ${secs(Date.now() - tu)}`);
  });

  after(() => {
    for (const c of running) try { process.kill(-c.pid!, "SIGTERM"); } catch { /* gone already */ }
    versitygw?.kill();
    agent?.kill();
    console.log(`      suite time: ${secs(Date.now() - t0)}`);
  });

  it("a pull request: act runs the preview of dev and prod; the summary names the change; the server sees no SSH connection", async () => {
    git("checkout", "-q", "-b", "change");
    editApp(`"Hello from Notes"`, `"Hello from the pull request"`);
    fs.writeFileSync(path.join(project, "migrations/0003_add_notes_tag.up.sql"), "ALTER TABLE notes ADD COLUMN tag TEXT;\n");
    fs.writeFileSync(path.join(project, "migrations/0003_add_notes_tag.down.sql"), "ALTER TABLE notes DROP COLUMN tag;\n");
    commit("a new greeting and a tag column");
    const event = path.join(tmp, "pull_request.json");
    fs.writeFileSync(event, JSON.stringify({
      action: "opened", number: 7,
      pull_request: { number: 7, head: { ref: "change", repo: { full_name: `example/${APP}` } }, base: { ref: "main", repo: { full_name: `example/${APP}` } } },
    }));
    const before = sshd();
    const r = await actRun("pull_request", "flask-deploy-preview.yml", ["-e", event]).done;
    const after = sshd();
    console.log(`      act pull_request: ${secs(r.ms)}; sshd's logins before ${before[0]}, after ${after[0]}; ` +
      `its connection lines before ${before[1]}, after ${after[1]}\n      (${stepTimes(r.output)})`);
    assert.ok(before[0] > 0 && before[1] >= before[0], "the counts see the first up's logins");
    assert.deepStrictEqual([after[0] - before[0], after[1] - before[1]], [0, 0], "a preview never connects to the server (logins, attempts)");
    assert.strictEqual(r.status, 0, tail(r.output, 120));
    // each matrix job's log lines (act prefixes them with the job's name); the summary is what the Summary step tee'd into $GITHUB_STEP_SUMMARY
    const jobs = new Map<string, string[]>();
    for (const m of r.output.matchAll(/^\[flask-deploy preview\/([^\]]+)\]\s+\| (.*)$/gm)) jobs.set(m[1], [...(jobs.get(m[1]) ?? []), m[2]]);
    const summary = (stack: string) => [...jobs.values()].find((lines) => lines.includes(`### flask-deploy preview of stack \`${stack}\``))?.join("\n") ?? "";
    const dev = summary("dev"), prod = summary("prod");
    assert.ok(dev && prod, `both stacks' summaries:\n${tail(r.output, 120)}`);
    const m = new RegExp(`^\\| release \\| \`([0-9a-f]{12})\` \\(new; replaces \`${firstRelease}\`\\) \\|$`, "m").exec(dev);
    assert.ok(m, `dev's summary names the new release replacing the live one ${firstRelease}:\n${dev}`);
    prRelease = m![1];
    assert.match(dev, /^\| migrations to apply \| `0003_add_notes_tag` \|$/m);
    assert.match(dev, /^\| strategy \| restart /m);
    assert.match(prod, /\(new: first deploy\)/, prod);
    // one preview per job (--json): the log lists its changing steps (preview-summary --steps on stderr) beside the summary
    const devLog = [...jobs.values()].find((lines) => lines.includes("### flask-deploy preview of stack `dev`"))!.join("\n");
    assert.match(devLog, /^\+- replace command:remote:Command \S*release-install \(.*triggers.*\)$/m, devLog);
    assert.match(devLog, /^\+- replace command:remote:Command \S*migrations-apply \(.*\)$/m, devLog);
    noSecrets(r.output);
  });

  it("the merge: act push deploys dev under load, 0 failed requests; the app serves the new code", async () => {
    git("checkout", "-q", "main");
    git("merge", "-q", "--ff-only", "change");
    const load = startLoad(`http://${server.host}/`, { concurrency: 2, maxSeconds: 300 });
    const r = await actRun("push", "flask-deploy.yml", ["-j", "dev"]).done;
    const res = await load.stop();
    assert.strictEqual(r.status, 0, tail(r.output, 120));
    console.log(`      act push: ${secs(r.ms)}; load ${res.requests} requests, ${res.failures} failed, max ${res.maxLatencyMs} ms\n      (${stepTimes(r.output)})`);
    assert.match(r.output, /state backend: s3:\/\/state\?/);
    assert.strictEqual(res.failures, 0, res.errors.join(", "));
    assert.ok(res.requests > 100, `a real load: ${res.requests} requests`);
    const out = outputs();
    assert.strictEqual(out.releaseId, prRelease, "the release the pull request's summary named");
    assert.match((await page("/")).text, /Hello from the pull request/);
    assert.match((await page("/health")).text, /"schema_version":\s*3/);
  });

  it("gitlab-ci-local deploys dev under load, 0 failed (secrets from a variables file); an act push meanwhile fails at once on the stack lock, naming it", async () => {
    // two pipelines at once: the first's release waits (a release command) until the test opens the gate, holding the lock meanwhile
    const wait = `i=0; until [ -e ${GATE} ] || [ $i -ge 1500 ]; do sleep 0.2; i=$((i+1)); done`;
    run(["pulumi", "config", "set", "--stack", "dev", "--path", "flask-deploy:releaseCommands[0]"], wait);
    editApp(`"Hello from the pull request"`, `"Hello from GitLab"`);
    commit("greeting from GitLab");
    const locks = path.join(s3Dir, "state/.pulumi/locks");
    const lockFiles = () => fs.existsSync(locks) ? fs.readdirSync(locks, { recursive: true }).map(String).filter((f) => f.endsWith(".json")) : [];
    assert.deepStrictEqual(lockFiles(), []);
    const load = startLoad(`http://${server.host}/`, { concurrency: 2, maxSeconds: 400 });
    const first = gitlabRun("deploy-dev");
    let lock: string[] = [];
    for (let i = 0; i < 1200 && !(lock = lockFiles()).length && first.child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 250));
    assert.strictEqual(lock.length, 1, `the first pipeline's up took the stack lock:\n${tail(first.child.exitCode === null ? "" : (await first.done).output)}`);
    const holder = JSON.parse(fs.readFileSync(path.join(locks, lock[0]), "utf8"));
    const holderIsFirst = descends(holder.pid, first.child.pid!) && /pulumi\0up\0/.test(fs.readFileSync(`/proc/${holder.pid}/cmdline`, "latin1"));
    const second = await actRun("push", "flask-deploy.yml", ["-j", "dev"]).done;
    const firstStillRunning = first.child.exitCode === null;
    execFileSync("bash", [path.join(PROJECT_DIR, "tests/servers/testserver.sh"), "sh", SERVER, "touch", GATE]);
    const r = await first.done;
    const res = await load.stop();
    console.log(`      gitlab-ci-local deploy-dev: ${secs(r.ms)}; load ${res.requests} requests, ${res.failures} failed, max ${res.maxLatencyMs} ms`);
    console.log(`      act push meanwhile failed after ${secs(second.ms)}: ${(/error: the stack is currently locked.*\n.*/.exec(second.output) ?? [""])[0]}`);
    assert.strictEqual(r.status, 0, tail(r.output, 120));
    assert.match(r.output, /state backend: s3:\/\/state\?/);
    assert.strictEqual(res.failures, 0, res.errors.join(", "));
    assert.ok(res.requests > 100, `a real load: ${res.requests} requests`);
    assert.notStrictEqual(outputs().releaseId, prRelease);
    assert.match((await page("/")).text, /Hello from GitLab/);
    noSecrets(r.output);
    // the second: refused by the state backend's lock before its program ran (no step, no SSH), naming the first's up
    assert.ok(firstStillRunning, "the first pipeline was still deploying when the second ended");
    assert.notStrictEqual(second.status, 0, "the second pipeline fails");
    assert.match(second.output, /error: the stack is currently locked by 1 lock\(s\)/);
    assert.match(second.output, new RegExp(`created by ${holder.username}@${holder.hostname} \\(pid ${holder.pid}\\)`), "naming the lock's holder");
    assert.ok(holderIsFirst, `the holder (pid ${holder.pid}) is the first pipeline's pulumi up`);
    assert.doesNotMatch(second.output, /command:remote:/, "before any step ran");
  });
});
