// Issue 15, strategy canary: traffic shifts to the new release in steps (nginx upstream weights,
// one graceful reload per step), each step gated on the numbers nginx logged for it. A good
// release walks every step and ends live with no failed request under load; a release that
// answers 500 to 30 % of real requests, and a slow one, abort at the first step with the old
// release serving, the new slot stopped and the database untouched. A migration not marked
// canary-safe makes the deploy go live blue-green instead.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { deployFresh } from "./fixture";
import { startLoad } from "./load";
import { PROJECT_DIR, TestStack } from "./pulumi";

const STEPS = "10,50,100";

describe("strategy canary: gated traffic shift", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let migrations: ReturnType<typeof copyMigrations>;
  let base: string;

  const MARK = "\n# --- canary test";
  /** The app's code with a marker and, optionally, a behaviour for requests that come through nginx. */
  function setCode(marker: string, proxied = ""): void {
    app.edit("wsgi.py", (s) => (s.includes(MARK) ? s.slice(0, s.indexOf(MARK)) : s.trimEnd() + "\n") + `${MARK}
import random as _random
import time as _time
from flask import request as _request


@app.get("/api/marker")
def marker():
    return {"marker": ${JSON.stringify(marker)}}


@app.before_request
def _behaviour():
    # only requests through nginx (real users): the deploy's own checks go to the slot's socket
    if "X-Forwarded-For" not in _request.headers:
        return None
${proxied || "    return None"}
`);
  }
  const liveRelease = async () => (await get(`${base}/health`)).json().release;
  const activeMasters = () => server.ssh("systemctl list-units --state=active --plain --no-legend 'fdeploy-flaskapp@*.service' | wc -l").trim();
  const upstreamConf = () => server.ssh("cat /etc/fdeploy/flaskapp/upstream.conf");
  const fdeploy = (words: string[]) => spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...words, "--stack", stack.name,
    "--config-file", stack.configFile], { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8" });

  /** An up under load; also watches the server for a canary in progress (fdeploy status). */
  async function upUnderLoad(watchStatus = false) {
    const load = startLoad(`${base}/`, { concurrency: 4, maxSeconds: 300 });
    const run = stack.runAsync(["up", "--yes", "--skip-preview"]);
    let status = "";
    if (watchStatus) {
      // the status command while the deploy runs (it needs no deploy lock)
      for (let i = 0; i < 120 && !/IN PROGRESS/.test(status); i++) {
        await new Promise((r) => setTimeout(r, 1000));
        if (server.ssh("test -f /srv/flaskapp/slots/canary.json && echo yes || true").trim() === "yes") {
          const s = fdeploy(["status"]);
          status = s.stdout + s.stderr;
        }
      }
    }
    const r = await run;
    return { r, load: await load.stop(), status };
  }

  before(() => {
    ({ server, stack, app, migrations, base } = deployFresh("canary", 171, {
      strategy: "canary", healthTimeoutSeconds: "15", "canary.steps": STEPS, "canary.stepSeconds": "4",
      "canary.minRequests": "8", "canary.maxErrorRate": "0.05", "canary.maxP95Ms": "700", "canary.maxWaitSeconds": "20",
    }));
  });
  after(() => stack?.remove());

  it("preview shows the steps and gates; the first deploy (nothing live to compare) went live blue-green", () => {
    const p = stack.preview();
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /strategy canary: 10 % → 50 % → 100 % of requests to the new release, 4 s per step; each step needs ≥ 8 requests/);
    assert.deepStrictEqual([JSON.parse(server.ssh("tail -n 1 /srv/flaskapp/history.jsonl"))].map((e) => [e.status, e.strategy]), [["live", "blue-green"]]);
    assert.match(server.ssh("cat /etc/nginx/sites-enabled/fdeploy-flaskapp.conf"), /include \/etc\/fdeploy\/flaskapp\/upstream\.conf;/);
  });

  let good = "";
  it("a good release with a canary-safe migration walks every step under load and ends live with 0 failed requests", async () => {
    const before = await liveRelease();
    fs.writeFileSync(path.join(migrations.dir, "0003_notes_pinned.up.sql"),
      "-- fdeploy: canary-safe (a new column with a default: the old release ignores it)\nALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n");
    fs.writeFileSync(path.join(migrations.dir, "0003_notes_pinned.down.sql"), "ALTER TABLE notes DROP COLUMN pinned;\n");
    setCode("good");
    const { r, load, status } = await upUnderLoad(true);
    assert.strictEqual(r.status, 0, r.output);
    for (const [i, pct] of [[1, 10], [2, 50], [3, 100]]) {
      assert.match(r.output, new RegExp(`canary step ${i}/3 \\(${pct} %\\) passed: new \\d+ requests, 0 5xx \\(0\\.0 %\\), p95 \\d+ ms \\| old \\d+ requests`), r.output);
    }
    good = await liveRelease();
    assert.notStrictEqual(good, before);
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "good");
    assert.strictEqual((await get(`${base}/health`)).json().schema_version, 3);
    assert.ok(load.requests > 50, `load ran (${load.requests} requests)`);
    assert.strictEqual(load.failures, 0, `failed requests: ${load.errors.join(", ")}`);
    console.log(`      good canary: ${load.requests} requests, 0 failed, ${load.retriedClosedConnections} retried on a keep-alive connection nginx closed at a reload, max ${load.maxLatencyMs} ms`);
    assert.strictEqual(activeMasters(), "1", "the old slot was stopped");
    assert.match(upstreamConf(), /^server unix:\/run\/fdeploy-flaskapp\/live\.sock;$/m, "the upstream is the live link again");
    assert.deepStrictEqual([JSON.parse(server.ssh("tail -n 1 /srv/flaskapp/history.jsonl"))].map((e) => [e.release, e.status, e.strategy, e.schema]), [[good, "live", "canary", 3]]);
    assert.match(status, /canary\s+IN PROGRESS: release [0-9a-f]{12} on slot (blue|green), step \d\/3/, `fdeploy status during the canary:\n${status}`);
    assert.strictEqual(server.ssh("test -e /srv/flaskapp/slots/canary.json && echo left || echo gone").trim(), "gone");
  });

  /** A release that must abort at the first step: old release serving, new slot stopped, data untouched. */
  async function mustAbort(marker: string, proxied: string, gate: RegExp) {
    const note = await get(`${base}/api/notes`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ body: `before ${marker}` }) });
    assert.ok(note.status < 300, note.text);
    const notesBefore = (await get(`${base}/api/notes`)).text;
    const liveSlot = server.ssh("cat /srv/flaskapp/slots/live").trim();
    setCode(marker, proxied);
    const { r, load } = await upUnderLoad();
    assert.notStrictEqual(r.status, 0, `the ${marker} release went live:\n${r.output}`);
    assert.match(r.output, /canary aborted at step 1\/3 \(10 %\)/);
    assert.match(r.output, gate);
    assert.match(r.output, /all traffic is back on release [0-9a-f]{12} \(slot (blue|green)\), the new slot is stopped, the database was not touched by the abort/);
    assert.doesNotMatch(r.output, /canary step 1\/3 \(10 %\) passed/);
    assert.strictEqual(await liveRelease(), good);
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "good");
    assert.strictEqual(server.ssh("cat /srv/flaskapp/slots/live").trim(), liveSlot);
    assert.strictEqual(activeMasters(), "1", "the new slot was stopped");
    assert.match(upstreamConf(), /^server unix:\/run\/fdeploy-flaskapp\/live\.sock;$/m);
    assert.strictEqual(JSON.parse(server.ssh("tail -n 1 /srv/flaskapp/history.jsonl")).status, "failed");
    assert.strictEqual((await get(`${base}/api/notes`)).text, notesBefore, "the data is what it was");
    assert.strictEqual((await get(`${base}/health`)).json().schema_version, 3);
    return { r, load };
  }

  it("a release that answers 500 to 30 % of real requests aborts at the first step; the old one keeps serving", async () => {
    const { r, load } = await mustAbort("flaky", `    if _random.random() < 0.3:
        return "injected failure", 500
    return None`, /the new release's 5xx share is over canary\.maxErrorRate \(0\.05\) \[new \d+ requests, \d+ 5xx/);
    const m = /\[new (\d+) requests, (\d+) 5xx \([\d.]+ %\), p95 [^|]*\| old (\d+) requests/.exec(r.output)!;
    const [newReqs, fiveXX, oldReqs] = [Number(m[1]), Number(m[2]), Number(m[3])];
    console.log(`      flaky canary: step 1 saw new ${newReqs} (${fiveXX} 5xx), old ${oldReqs}; the load saw ${load.failures} failed of ${load.requests}`);
    assert.ok(fiveXX > 0);
    // users saw at most the new release's share of the step's traffic as errors
    assert.ok(load.failures <= 0.1 * (newReqs + oldReqs),
      `users saw ${load.failures} failures; the step sent ${newReqs} of ${newReqs + oldReqs} requests to the new release`);
  });

  it("a slow release (p95 over canary.maxP95Ms) aborts at the first step", async () => {
    await mustAbort("slow", `    _time.sleep(1.2)
    return None`, /the new release's p95 is over canary\.maxP95Ms \(700 ms\) \[new \d+ requests, 0 5xx \(0\.0 %\), p95 \d+ ms/);
  });

  it("a migration not marked canary-safe: the deploy goes live blue-green, and says why", async () => {
    fs.writeFileSync(path.join(migrations.dir, "0004_notes_tag.up.sql"), "ALTER TABLE notes ADD COLUMN tag TEXT;\n");
    fs.writeFileSync(path.join(migrations.dir, "0004_notes_tag.down.sql"), "ALTER TABLE notes DROP COLUMN tag;\n");
    setCode("unmarked migration");
    const { r, load } = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /canary: migrations applied for this release are not marked '-- fdeploy: canary-safe': 0004_notes_tag\.up\.sql; going live blue-green instead/);
    assert.doesNotMatch(r.output, /canary step 1/);
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "unmarked migration");
    assert.strictEqual((await get(`${base}/health`)).json().schema_version, 4);
    assert.strictEqual(load.failures, 0, `failed requests: ${load.errors.join(", ")}`);
    assert.deepStrictEqual([JSON.parse(server.ssh("tail -n 1 /srv/flaskapp/history.jsonl"))].map((e) => [e.status, e.strategy, e.schema]), [["live", "blue-green", 4]]);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /(created|updated|replaced)/, "the up after it changed something");
  });

  it("a canary killed mid-way (no cleanup ran) is shown by fdeploy status and undone by the next deploy", async () => {
    stack.setConfig("canary.stepSeconds", "60");
    setCode("after an interrupted canary");
    const run = stack.runAsync(["up", "--yes", "--skip-preview"]);
    let pid = "";
    for (let i = 0; i < 180 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      pid = server.ssh("python3 -c 'import json; print(json.load(open(\"/srv/flaskapp/slots/canary.json\"))[\"pid\"])' 2>/dev/null || true").trim();
    }
    assert.match(pid, /^\d+$/, "the canary started");
    server.ssh(`kill -9 ${pid}`);   // a crash: activate.sh gets no chance to clean up
    const r = await run;
    assert.notStrictEqual(r.status, 0);
    assert.match(upstreamConf(), /weight=90;[\s\S]*weight=10;/, "the split was left behind");
    const st = fdeploy(["status"]);
    assert.match(st.stdout, /canary\s+interrupted \(the next deploy sends all traffic back to the live slot\): release [0-9a-f]{12} on slot (blue|green), step 1\/3/, st.stdout + st.stderr);
    stack.setConfig("canary.stepSeconds", "4");
    const { r: again, load } = await upUnderLoad();
    assert.strictEqual(again.status, 0, again.output);
    assert.match(again.output, /an interrupted canary left traffic split: all of it back to the live slot/);
    assert.match(again.output, /canary step 3\/3 \(100 %\) passed/);
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "after an interrupted canary");
    assert.strictEqual(load.failures, 0, `failed requests: ${load.errors.join(", ")}`);
    assert.match(upstreamConf(), /^server unix:\/run\/fdeploy-flaskapp\/live\.sock;$/m);
    assert.strictEqual(activeMasters(), "1");
  });

  it("rolling: its throw-away slot is now `probe`; a `canary` slot left by an older version is removed (upgrade in place)", async () => {
    stack.setConfig("strategy", "rolling");
    stack.mustRun(["config", "rm", "canary"]);   // canary.* with another strategy is refused (a forgotten strategy?)
    // what an older version's rolling deploy left when it was interrupted: the slot `canary` linked,
    // enabled and running
    server.ssh("cd /srv/flaskapp/slots && ln -sfn \"$(readlink -f $(cat live))\" canary && cp \"$(cat live).env\" canary.env && " +
      "systemctl enable --now --quiet fdeploy-flaskapp@canary.socket fdeploy-flaskapp@canary.service");
    setCode("rolling after upgrade");
    const { r, load } = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /health check of probe passed/);
    assert.match(r.output, /removed the slot 'canary' left by an older version's rolling strategy/);
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "rolling after upgrade");
    assert.strictEqual(load.failures, 0, `failed requests: ${load.errors.join(", ")}`);
    assert.strictEqual(server.ssh("ls /srv/flaskapp/slots | grep -c '^canary' || true").trim(), "0");
    assert.strictEqual(server.ssh("systemctl is-active fdeploy-flaskapp@canary.service fdeploy-flaskapp@probe.service || true").trim(), "inactive\ninactive");
    assert.strictEqual(activeMasters(), "1");
  });
});
