// Issue #13: `fdeploy`, the operations command, against one real server (ops, .131): status and
// releases true to the server, logs, exec/console in the live release, rollback and purge moved
// there, maintenance mode (503 then 200, no failed request outside the window, kept by a deploy,
// no drift), the deploy lock, and the errors a user meets (unknown stack, unreachable server, host
// key mismatch, no app deployed).
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Worker } from "worker_threads";
import { TestServer } from "../servers";
import { copyApp, get } from "./app-copy";
import { deployFresh } from "./fixture";
import { PROJECT_DIR, RunResult, TestStack } from "./pulumi";

const GREETING = "hello from ops";
// one connection per request (`connection: close`): a kept-alive connection that an nginx reload closes between two
// requests is the client's race, not a failed request of the server's
/** GET workerData.url every 20 ms (a new connection each) until told to stop, then posts the samples: when each was sent, its status, or 0 and the error when no answer came. */
const SAMPLER = `
const { parentPort, workerData } = require("worker_threads");
let stop = false;
parentPort.on("message", () => { stop = true; });
(async () => {
  const samples = [];
  while (!stop) {
    const t = Date.now();
    try {
      const r = await fetch(workerData.url, { headers: { connection: "close" }, signal: AbortSignal.timeout(10000) });
      await r.text();
      samples.push({ t, status: r.status });
    } catch (e) {
      samples.push({ t, status: 0, error: String((e && e.cause && e.cause.code) || e) });
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  parentPort.postMessage(samples);
})();`;
const SECRET = "ops-test-secret";   // deployFresh's secrets.SECRET_KEY

describe("fdeploy: operating a deployed app", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let base: string;
  const released: string[] = [];

  /** `fdeploy WORDS --stack ops --config-file … REST` (the bin, as a user runs it). */
  function fdeploy(words: string[], rest: string[] = [], opts: { configFile?: string; input?: string } = {}): RunResult {
    const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...words, "--stack", stack.name,
      "--config-file", opts.configFile ?? stack.configFile, ...rest], { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8", input: opts.input ?? "" });
    const stdout = r.stdout ?? "", stderr = r.stderr ?? "";
    return { status: r.status ?? -1, stdout, stderr, output: stdout + stderr };
  }
  function json(words: string[], rest: string[] = []): any {
    const r = fdeploy(words, ["--json", ...rest]);
    assert.strictEqual(r.status, 0, r.output);
    return JSON.parse(r.stdout);
  }
  /** F's result while the stack's state records the app (its FlaskApp's `fdeploy` output, what fdeploy reads) with
   * EDIT applied; the state is restored after. */
  function withRecord<T>(edit: (record: any) => void, f: () => T): T {
    const original = stack.mustRun(["stack", "export"]).stdout;
    const state = JSON.parse(original);
    edit(state.deployment.resources.find((x: any) => x.type === "flaskdeploy:index:FlaskApp").outputs.fdeploy);
    stack.mustRun(["stack", "import"], JSON.stringify(state));
    try {
      return f();
    } finally {
      stack.mustRun(["stack", "import"], original);
    }
  }
  /** A copy of the stack's config with KEY set to VALUE (same stack, same passphrase). */
  function configWith(key: string, value: string): string {
    const f = path.join(stack.dir, `variant-${key.replace(/\W/g, "_")}.yaml`);
    fs.copyFileSync(stack.configFile, f);
    const r = spawnSync("pulumi", ["config", "set", "--path", key, "--stack", stack.name, "--config-file", f, "--non-interactive"],
      { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8", input: value });
    assert.strictEqual(r.status, 0, r.stderr);
    return f;
  }
  function deployChange(marker: string): void {
    app.edit("wsgi.py", (s) => s.replace(/\n# ops marker.*$/s, "") + `\n# ops marker ${marker}\n`);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    released.push(stack.outputs().releaseId);
  }

  /** GET like a browser: once more on a new connection if nginx closed an idle keep-alive one. */
  async function getRetry(url: string): ReturnType<typeof get> {
    try {
      return await get(url);
    } catch {
      return get(url);
    }
  }

  before(() => {
    ({ server, stack, app, base } = deployFresh("ops", 131, { "env.APP_GREETING": GREETING }));
    released.push(stack.outputs().releaseId);
  });
  after(() => stack?.remove());

  it("every command has --help; an unknown stack is named", () => {
    for (const c of [["status"], ["releases"], ["logs"], ["exec"], ["console"], ["rollback"], ["purge"], ["maintenance"], ["lock", "status"], ["lock", "release"]]) {
      const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...c, "--help"], { encoding: "utf8", env: stack.env });
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stdout, /--stack/, `${c.join(" ")} --help`);
    }
    const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), "status", "--stack", "no-such-stack"], { encoding: "utf8", env: stack.env });
    assert.strictEqual(r.status, 2, r.stderr);
    assert.match(r.stderr, /unknown stack 'no-such-stack'/);
  });

  it("status --json is true to the server", async () => {
    const st = json(["status"]);
    const live = server.ssh("basename $(readlink -f /srv/flaskapp/current)").trim();
    assert.strictEqual(st.release, live);
    assert.strictEqual(st.release, released[0]);
    assert.strictEqual((await get(`${base}/health`)).json().release, st.release);
    assert.strictEqual(st.liveSlot, server.ssh("cat /srv/flaskapp/slots/live").trim());
    assert.deepStrictEqual(st.slots.map((s: any) => [s.name, s.release, s.state]), [[st.liveSlot, live, "active/running"]]);
    assert.deepStrictEqual(st.health, { path: "/health", status: 200, ok: true });
    assert.strictEqual(st.lastDeploy.release, live);
    assert.strictEqual(st.lastDeploy.status, "live");
    assert.deepStrictEqual(st.drift, []);
    assert.deepStrictEqual(st.maintenance, { on: false });
    assert.ok(st.ageSeconds >= 0 && st.ageSeconds < 900, String(st.ageSeconds));
    const du = Number(server.ssh("du -sb /srv/flaskapp/releases | cut -f1"));
    assert.ok(Math.abs(st.disk.releasesBytes - du) < 1024 * 1024, `${st.disk.releasesBytes} vs ${du}`);
    assert.ok(st.disk.databaseBytes > 0);
    // drift and health are what the server says now: a stopped app shows
    const units = `fdeploy-flaskapp@${st.liveSlot}.socket fdeploy-flaskapp@${st.liveSlot}.service`;
    server.ssh(`systemctl stop ${units}`);
    try {
      const stopped = json(["status"]);
      assert.deepStrictEqual([stopped.drift, stopped.health.ok, stopped.slots[0].state], [["notRunning"], false, "inactive/dead"]);
    } finally {
      server.ssh(`systemctl start ${units}`);
    }
    assert.deepStrictEqual(json(["status"]).drift, []);
    const human = fdeploy(["status"]);
    assert.strictEqual(human.status, 0, human.output);
    assert.match(human.stdout, new RegExp(`live release\\s+${live}`));
    assert.match(human.stdout, /maintenance\s+off/);
  });

  it("fdeploy runs the scripts of the deploy that went live, not the newest upload (a failed up leaves newer ones)", () => {
    // a newer upload whose scripts do not match the server's state, as a failed up leaves behind
    const fake = "/root/.fdeploy/flaskapp/scripts-ffffffffffff";
    server.ssh(`install -d ${fake}/agent/fdeploy_agent && printf 'import sys\nsys.exit("ran the newest upload")\n' >${fake}/agent/__main__.py && ` +
      `cp /root/.fdeploy/flaskapp/live-scripts/agent/fdeploy_agent/cli.py ${fake}/agent/fdeploy_agent/ && touch -d '+1 hour' ${fake}`);
    try {
      const r = fdeploy(["status"], ["--json"]);
      assert.strictEqual(r.status, 0, r.output);
      assert.doesNotMatch(r.output, /ran the newest upload/);
      assert.strictEqual(JSON.parse(r.stdout).release, server.ssh("basename $(readlink -f /srv/flaskapp/current)").trim());
      assert.match(server.ssh("readlink /root/.fdeploy/flaskapp/live-scripts"), /^scripts-[0-9a-f]{12}\n$/);
    } finally {
      server.ssh(`rm -rf ${fake}`);
    }
  });

  it("releases --json lists kept releases, the live one and times", () => {
    deployChange("two");
    const list = json(["releases"]);
    assert.deepStrictEqual(list.map((r: any) => [r.id, r.status, r.kept]), [[released[1], "live", true], [released[0], "kept", true]]);
    assert.ok(list.every((r: any) => /^\d{4}-\d\d-\d\dT/.test(r.firstLive) && r.schema > 0));
    const table = fdeploy(["releases"]);
    assert.match(table.stdout, new RegExp(`^${released[1]}\\s+live`, "m"));
  });

  it("logs: the app's journal and nginx's logs, with --since, -n, --grep and -f", async () => {
    const mark = `ops-log-${Date.now()}`;
    await get(`${base}/health?${mark}`);
    let r = fdeploy(["logs"], ["--since", "10m", "--grep", mark]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, new RegExp(`GET /health\\?${mark}`));
    r = fdeploy(["logs"], ["-n", "3"]);
    assert.strictEqual(r.stdout.trim().split("\n").length, 3, r.stdout);
    r = fdeploy(["logs"], ["--nginx", "--grep", mark, "--since", "1h"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, new RegExp(`"GET /health\\?${mark} HTTP/1.1" 200`));
    assert.strictEqual(fdeploy(["logs"], ["--nginx", "--grep", mark, "--since", "2026-01-01 00:00:00", "-n", "1"]).status, 0);
    // -f prints lines as they come
    const follow = spawn("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), "logs", "--stack", stack.name, "--config-file", stack.configFile,
      "-f", "-n", "0", "--grep", `${mark}-f`], { cwd: PROJECT_DIR, env: stack.env, detached: true });
    let out = "";
    follow.stdout.on("data", (d) => (out += d));
    try {
      const deadline = Date.now() + 60000;
      while (!out.includes(`${mark}-f`) && Date.now() < deadline) {
        await get(`${base}/health?${mark}-f`);
        await new Promise((res) => setTimeout(res, 1000));
      }
      assert.match(out, new RegExp(`GET /health\\?${mark}-f`));
    } finally {
      process.kill(-follow.pid!, "SIGTERM");
    }
  });

  it("exec runs in the live release with its environment, as the live slot's user, printing nothing else", () => {
    let r = fdeploy(["exec"], ["--", "printenv", "APP_GREETING"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.output, `${GREETING}\n`);   // nothing but the command's output
    r = fdeploy(["exec"], ["--", "sh", "-c", 'echo "$(id -un) $(pwd) $RELEASE_ID $(command -v flask)"; test -n "$SECRET_KEY"']);
    assert.strictEqual(r.status, 0, r.output);
    const live = released[released.length - 1];
    // as the live slot's user (one of the app's two slot users)
    assert.match(r.stdout.trim(), new RegExp(`^flaskapp_[12] /srv/flaskapp/releases/${live} ${live} /srv/flaskapp/releases/${live}/\\.venv/bin/flask$`));
    assert.ok(!r.output.includes(SECRET), "a secret nobody asked for was printed");
    r = fdeploy(["exec"], ["--", "flask", "routes"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, /\/health/);
    assert.strictEqual(fdeploy(["exec"], ["--", "sh", "-c", "exit 7"]).status, 7);
    // arguments are data, never shell text; --stdin feeds the command
    r = fdeploy(["exec"], ["--stdin", "--", "python", "-", "$(touch /tmp/x)", "a b", "$HOME", "%n", "$$"], { input: "import sys; print(sys.argv[1:])\n" });
    assert.strictEqual(r.stdout.trim(), "['$(touch /tmp/x)', 'a b', '$HOME', '%n', '$$']", r.output);
    // the slots' sandbox: the release is read-only for the app user
    assert.notStrictEqual(fdeploy(["exec"], ["--", "touch", `/srv/flaskapp/releases/${live}/x`]).status, 0);
  });

  it("console gives a flask shell on a terminal", async () => {
    // `script` gives fdeploy a terminal; the lines are typed once the shell prompts
    const cmd = `bash ${path.join(PROJECT_DIR, "cli/fdeploy")} console --stack ${stack.name} --config-file ${stack.configFile}`;
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { env: stack.env });
    let out = "", typed = false;
    child.stdout.on("data", (d) => {
      out += d;
      if (!typed && out.includes(">>> ")) { typed = true; child.stdin.write("print(6 * 7, app.name)\nexit()\n"); }
    });
    const timer = setTimeout(() => child.kill(), 120000);
    const status = await new Promise((res) => child.on("close", res));
    clearTimeout(timer);
    assert.strictEqual(status, 0, out);
    assert.match(out, /42 notes/);
    const noTty = fdeploy(["console"]);
    assert.strictEqual(noTty.status, 2);
    assert.match(noTty.stderr, /needs a terminal/);
  });

  it("maintenance on answers 503 with a page, kept by a deploy, no drift; off answers 200; no failure outside the window", async () => {
    // the samples are taken by a thread of their own: this test's synchronous steps (fdeploy, pulumi preview and up
    // by spawnSync) block this thread's event loop for seconds, and a request in flight here would then time out
    // here, not at nginx (seen once: a 10 s timeout while the deploy below ran)
    const sampler = new Worker(SAMPLER, { eval: true, workerData: { url: `${base}/health` } });
    const collected = new Promise<{ t: number; status: number; error?: string }[]>((res, rej) => {
      sampler.once("message", res);
      sampler.once("error", rej);
    });
    await new Promise((res) => setTimeout(res, 1500));
    const onStart = Date.now();
    let r = fdeploy(["maintenance", "on"], ["--message", "Back at 9 <soon>"]);
    const onDone = Date.now();
    assert.strictEqual(r.status, 0, r.output);
    const page = await getRetry(`${base}/anything`);
    assert.strictEqual(page.status, 503);
    assert.match(page.text, /Back at 9 &lt;soon&gt;/);
    assert.strictEqual((await getRetry(`${base}/static/style.css`)).status, 503);
    // the server's own requests (the deploy's health check) still reach the app
    assert.match(server.ssh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/health"), /^200$/);
    const st = json(["status"]);
    assert.strictEqual(st.maintenance.on, true);
    assert.match(st.maintenance.since, /^\d{4}-/);
    // intended state: no drift for Pulumi's refresh, and a deploy keeps it
    const preview = stack.run(["preview", "--refresh", "--expect-no-changes"]);
    assert.strictEqual(preview.status, 0, preview.output);
    deployChange("three");
    assert.strictEqual((await getRetry(`${base}/health`)).status, 503);
    assert.strictEqual(fdeploy(["maintenance", "on"]).status, 0);   // idempotent
    // nginx refusing its configuration: the mode stays as it was, on the server and in status
    server.ssh("echo 'not nginx;' >/etc/nginx/conf.d/ops-broken.conf");
    try {
      const refused = fdeploy(["maintenance", "off"]);
      assert.notStrictEqual(refused.status, 0, refused.output);
      assert.match(refused.stderr, /nginx rejects its configuration; maintenance mode unchanged/);
      assert.strictEqual(json(["status"]).maintenance.on, true);
    } finally {
      server.ssh("rm -f /etc/nginx/conf.d/ops-broken.conf");
    }
    await new Promise((res) => setTimeout(res, 1500));
    const offStart = Date.now();
    r = fdeploy(["maintenance", "off"]);
    const offDone = Date.now();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(fdeploy(["maintenance", "off"]).status, 0);   // idempotent
    await new Promise((res) => setTimeout(res, 1500));
    sampler.postMessage("stop");
    const samples = await collected;
    await sampler.terminate();
    assert.strictEqual((await getRetry(`${base}/health`)).json().release, released[2]);
    assert.strictEqual(json(["status"]).maintenance.on, false);
    const before = samples.filter((s) => s.t < onStart), during = samples.filter((s) => s.t > onDone && s.t < offStart);
    const after = samples.filter((s) => s.t > offDone);
    assert.ok(before.length > 5 && during.length > 5 && after.length > 5, `${before.length}/${during.length}/${after.length}`);
    assert.deepStrictEqual([...new Set(before.map((s) => s.status))], [200]);
    assert.deepStrictEqual([...new Set(during.map((s) => s.status))], [503], JSON.stringify(during.filter((s) => s.status !== 503)));
    assert.deepStrictEqual([...new Set(after.map((s) => s.status))], [200]);
    assert.ok(samples.every((s) => s.status === 200 || s.status === 503), JSON.stringify(samples.filter((s) => ![200, 503].includes(s.status))));
  });

  it("rollback steps back (also as npm run rollback) and --forward returns", async () => {
    let r = fdeploy(["rollback"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await getRetry(`${base}/health`)).json().release, released[1]);
    assert.strictEqual(json(["status"]).release, released[1]);
    r = stack.rollback("--forward");   // the npm run alias (scripts/rollback.ts)
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await getRetry(`${base}/health`)).json().release, released[2]);
    assert.strictEqual(fdeploy(["rollback"], ["--to", "nothex"]).status, 2);
  });

  it("lock status shows the holder; lock release stops it", () => {
    assert.deepStrictEqual(json(["lock", "status"]), { held: false, owner: null, processes: [] });
    server.ssh("mkdir -p /run/fdeploy && echo \"4242 2026-12-05T06:00:00Z alice\" > /run/fdeploy/flaskapp.lock.owner && " +
      "(setsid flock /run/fdeploy/flaskapp.lock sleep 600 </dev/null >/dev/null 2>&1 &) && sleep 1");
    const st = json(["lock", "status"]);
    assert.strictEqual(st.held, true);
    assert.deepStrictEqual(st.owner, { pid: 4242, since: "2026-12-05T06:00:00Z", user: "alice" });
    assert.ok(st.processes.some((p: any) => /sleep 600/.test(p.command)), JSON.stringify(st));
    const noYes = fdeploy(["lock", "release"]);
    assert.strictEqual(noYes.status, 2, noYes.output);
    const r = fdeploy(["lock", "release"], ["--yes"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, /is free/);
    assert.strictEqual(json(["lock", "status"]).held, false);
    assert.strictEqual(server.trySsh("pgrep -f 'sleep [6]00'").status, 1);
    const up = stack.up();   // a deploy takes the lock again
    assert.strictEqual(up.status, 0, up.output);
  });

  it("errors: unreachable server, host key mismatch, no app deployed; purge refuses a deployed app", () => {
    let r = withRecord((a) => { a.server.host = "10.213.0.250"; }, () => fdeploy(["status"]));
    assert.strictEqual(r.status, 5, r.output);
    assert.match(r.stderr, /cannot reach the server root@10\.213\.0\.250:22/);
    const keyFile = path.join(stack.dir, "other-host-key");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
    const otherKey = fs.readFileSync(`${keyFile}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    r = withRecord((a) => { a.server.hostKey = otherKey; }, () => fdeploy(["status"]));
    assert.strictEqual(r.status, 5, r.output);
    assert.match(r.stderr, new RegExp(`host key mismatch: root@${server.host.replace(/\./g, "\\.")}:22`));
    r = withRecord((a) => { a.appName = "otherapp"; }, () => fdeploy(["releases"]));
    assert.strictEqual(r.status, 3, r.output);
    assert.match(r.stderr, new RegExp(`no app 'otherapp' deployed on ${server.host.replace(/\./g, "\\.")}`));
    r = fdeploy(["purge"], ["--confirm", "wrong"]);
    assert.strictEqual(r.status, 2, r.output);
    r = stack.purge("flaskapp");   // the npm run alias: refuses while deployed
    assert.notStrictEqual(r.status, 0, r.output);
    assert.strictEqual(server.trySsh("test -f /etc/fdeploy/flaskapp/env").status, 0);
  });

  // issue 34: what a new user pastes into server.hostKey
  it("server.hostKey takes what ssh-keyscan -t ed25519 HOST prints; a key scanned from another host is refused naming both", () => {
    const scan = spawnSync("ssh-keyscan", ["-t", "ed25519", server.host], { encoding: "utf8", timeout: 30000 });
    const line = scan.stdout.split("\n").find((l) => l.startsWith(`${server.host} ssh-ed25519 `));
    assert.ok(line, `ssh-keyscan printed no ed25519 key line: ${scan.stdout}${scan.stderr}`);
    // the program reads the config (fdeploy reads the state): a preview with each variant of the stack's config file
    const preview = (file: string) => spawnSync("pulumi", ["preview", "--stack", stack.name, "--config-file", file, "--non-interactive"],
      { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8" });
    let r = preview(configWith("server.hostKey", line));
    assert.strictEqual(r.status, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /[+~-] +command:remote/, "the same key: no step changes");
    r = preview(configWith("server.hostKey", line.replace(server.host, "other.example.com")));
    assert.notStrictEqual(r.status, 0, r.stdout);
    assert.match(r.stdout + r.stderr, new RegExp(`flask-deploy:server\\.hostKey: the key was scanned from other\\.example\\.com, not from ${server.host.replace(/\./g, "\\.")} `));
  });
});
