// Issue "Zero-downtime": restart, rolling and blue-green each deploy a code + dependency change that
// the server really runs afterwards; rolling and blue-green drop no request under load; a broken
// release under blue-green leaves the old one serving; rollback (an up with the release pinned)
// restores release and schema with true outputs, steps further back when repeated, and --forward
// deploys appDir's release again.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { addWheels, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { deployFresh } from "./fixture";
import { startLoad } from "./load";
import { TestStack } from "./pulumi";
import { tempDir } from "../tmpdir";

const EXTRA_DEP = "six==1.17.0";

describe("strategies: restart, rolling, blue-green, rollback", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let migrations: ReturnType<typeof copyMigrations>;
  let base: string;
  const releases: Record<string, string> = {};

  /** Marks the app's code with `marker` and, once, adds a dependency the code uses. */
  function changeCode(marker: string): void {
    app.edit("wsgi.py", (s) => s.replace(/\n# marker[\s\S]*$/, "") + `
# marker
import importlib.metadata as _md


@app.get("/api/marker")
def marker():
    return {"marker": ${JSON.stringify(marker)}, "six": _md.version("six")}
`);
    app.edit("requirements.txt", (s) => (s.includes("six==") ? s : s.trimEnd() + `\n${EXTRA_DEP}\n`));
  }

  before(() => {
    const req = path.join(tempDir("fdeploy-req-"), "requirements.txt");
    fs.writeFileSync(req, `${EXTRA_DEP}\n`);
    addWheels(req);
    ({ server, stack, app, migrations, base } = deployFresh("strat", 61, { healthTimeoutSeconds: "15" }));
  });
  after(() => stack?.remove());

  for (const strategy of ["restart", "rolling", "blue-green"]) {
    it(`${strategy}: a code + dependency change is really running afterwards`, async () => {
      stack.setConfig("strategy", strategy);
      changeCode(`deployed with ${strategy}`);
      const load = startLoad(`${base}/health`, { concurrency: 4, maxSeconds: 240 });
      const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
      const result = await load.stop();
      assert.strictEqual(r.status, 0, r.output);
      const m = (await get(`${base}/api/marker`)).json();
      assert.deepStrictEqual(m, { marker: `deployed with ${strategy}`, six: "1.17.0" });
      releases[strategy] = stack.outputs().releaseId;
      assert.strictEqual((await get(`${base}/health`)).json().release, releases[strategy]);
      assert.ok(result.requests > 20, `load ran (${result.requests} requests)`);
      if (strategy !== "restart") {
        assert.strictEqual(result.failures, 0, `${strategy} dropped requests: ${result.errors.join(", ")}`);
      }
      // one Gunicorn master serves: the old slot was stopped
      const masters = server.ssh("systemctl list-units --state=active --plain --no-legend 'fdeploy-flaskapp@*.service' | wc -l").trim();
      assert.strictEqual(masters, "1");
    });
  }

  // A release whose process exits fails fast: well under the health timeout (120 s here), with the
  // app's own error; the live release keeps serving. restart: code that does not import is caught by the
  // deploy's preflight, before the migrations; blue-green, rolling: code that imports in the preflight but
  // exits under Gunicorn is caught by the new slot's own check.
  const brokenExpect: Record<string, RegExp> = {
    "blue-green": /failed its health check on slot (blue|green); slot (blue|green) keeps serving/,
    rolling: /failed its health check on the probe slot; the live release is untouched/,
    restart: /release [0-9a-f]{12} does not load \(flask-deploy:appModule wsgi:app\): RuntimeError: broken on purpose\. It is not live; the live release is untouched/,
  };
  const brokenCode: Record<string, string> = {
    "blue-green": "\nimport sys\nif 'gunicorn' in sys.argv[0]: raise RuntimeError('broken on purpose')\n",
    rolling: "\nimport sys\nif 'gunicorn' in sys.argv[0]: raise RuntimeError('broken on purpose')\n",
    restart: "\nraise RuntimeError('broken on purpose')\n",
  };
  for (const strategy of ["blue-green", "rolling", "restart"]) {
    it(`${strategy}: a release whose process exits fails fast; the live one keeps serving`, async () => {
      stack.setConfig("strategy", strategy);
      stack.setConfig("healthTimeoutSeconds", "120");
      const live = (await get(`${base}/health`)).json().release;
      const liveSlot = server.ssh("cat /srv/flaskapp/slots/live").trim();
      const history = server.ssh("cat /srv/flaskapp/history.jsonl");
      app.edit("wsgi.py", (s) => s + brokenCode[strategy]);
      try {
        const load = startLoad(`${base}/health`, { concurrency: 2, maxSeconds: 240 });
        const t0 = Date.now();
        const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
        const seconds = (Date.now() - t0) / 1000;
        const result = await load.stop();
        assert.notStrictEqual(r.status, 0);
        assert.match(r.output, brokenExpect[strategy]);
        assert.match(r.output, /broken on purpose/, `the journal tail shows the app error:\n${r.output.slice(-3000)}`);
        if (strategy !== "restart") assert.match(r.output, /its process .*exited.*not waiting out the 120s health timeout/);
        // the whole up (upload, venv install, the failed check) in less than half the timeout
        assert.ok(seconds < 60, `the failing up took ${seconds.toFixed(1)} s, not under half the 120 s health timeout`);
        assert.strictEqual(result.failures, 0, `requests failed: ${result.errors.join(", ")}`);
        assert.strictEqual((await get(`${base}/health`)).json().release, live);
        assert.strictEqual(server.ssh("cat /srv/flaskapp/slots/live").trim(), liveSlot);
        if (strategy === "restart") {
          assert.strictEqual(server.ssh("cat /srv/flaskapp/history.jsonl"), history, "the preflight failed before any activation");
        } else {
          assert.strictEqual(JSON.parse(server.ssh("tail -n1 /srv/flaskapp/history.jsonl")).status, "failed");
        }
      } finally {
        app.edit("wsgi.py", (s) => s.replace(brokenCode[strategy], ""));
        stack.setConfig("healthTimeoutSeconds", "15");
      }
    });
  }

  it("blue-green: a failing settings-only change (appModule) keeps the old settings serving; retrying fails again; setting it back converges", async () => {
    stack.setConfig("strategy", "blue-green");
    const live = (await get(`${base}/health`)).json().release;
    const unit = "/etc/systemd/system/fdeploy-flaskapp@.service";
    // imports fine, but a factory without () would answer 500 (Gunicorn calls it as the WSGI app):
    // the preflight refuses it at once (issue 17)
    stack.setConfig("appModule", "notes:create_app");
    for (const attempt of ["first", "retry"]) {
      const load = startLoad(`${base}/health`, { concurrency: 2, maxSeconds: 240 });
      const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
      const result = await load.stop();
      assert.notStrictEqual(r.status, 0, `${attempt}: a failing module went live:\n${r.output}`);
      assert.match(r.output, /notes:create_app is a function that is not a WSGI app .*set appModule to notes:create_app\(\)/);
      assert.strictEqual(result.failures, 0, `${attempt}: requests failed: ${result.errors.join(", ")}`);
      assert.strictEqual((await get(`${base}/health`)).json().release, live);
      assert.match(server.ssh(`cat ${unit}`), / wsgi:app\n/, `${attempt}: the unit in force is not the live one`);
    }
    stack.mustRun(["config", "rm", "appModule"]);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await get(`${base}/health`)).status, 200);
    assert.match(server.ssh(`cat ${unit}`), / wsgi:app\n/);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /(created|updated|replaced)/, "the up after it changed something");
  });

  it("blue-green with a migration, then rollback restores the previous release and its schema", async () => {
    stack.setConfig("strategy", "blue-green");
    fs.writeFileSync(path.join(migrations.dir, "0003_add_notes_pinned.up.sql"), "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n");
    fs.writeFileSync(path.join(migrations.dir, "0003_add_notes_pinned.down.sql"), "ALTER TABLE notes DROP COLUMN pinned;\n");
    changeCode("with schema 3");
    const up = stack.up();
    assert.strictEqual(up.status, 0, up.output);
    const newest = stack.outputs().releaseId;
    assert.strictEqual((await get(`${base}/health`)).json().schema_version, 3);
    const history = stack.outputs().releaseHistory;
    assert.strictEqual(history[history.length - 1].releaseId, newest);

    // issue 34: a preview with the previous release pinned names the down migration and what it drops
    const previous = [...history].reverse().find((e: any) => e.status === "live" && e.releaseId !== newest).releaseId;
    stack.setConfig("release", previous);
    const pinnedPreview = stack.preview();
    stack.mustRun(["config", "rm", "release"]);
    assert.strictEqual(pinnedPreview.status, 0, pinnedPreview.output);
    assert.match(pinnedPreview.output, new RegExp(`flask-deploy:release ${previous}: this up runs down migrations from schema version 3 to 2, ` +
      "newest first: 0003_add_notes_pinned drops column notes\\.pinned"));
    assert.match(pinnedPreview.output, /backs the database up first into \/srv\/flaskapp\/shared\/backups\//);
    // issue 34: a rollback whose down migration drops data says what, and stops without --yes
    const note = await get(`${base}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "pinned" }) });
    assert.strictEqual(note.status, 201, note.text);
    server.ssh(`runuser -u flaskapp -- python3 -c 'import sqlite3; c = sqlite3.connect("/srv/flaskapp/shared/db/app.sqlite3"); c.execute("UPDATE notes SET pinned = 1 WHERE id = ${note.json().id}"); c.commit()'`);
    const refused = stack.rollback();
    assert.notStrictEqual(refused.status, 0, refused.output);
    assert.match(refused.output, /0003_add_notes_pinned: drops column notes\.pinned \(1 row holds a value other than its default\)/);
    assert.match(refused.output, /backs the database up into \/srv\/flaskapp\/shared\/backups\//);
    assert.match(refused.output, /stopped before anything changed: its down migrations drop the data listed above.*--yes/);
    assert.strictEqual((await get(`${base}/health`)).json().schema_version, 3, "the refused rollback changed the schema");
    assert.strictEqual(stack.outputs().releaseId, newest);
    const rb = stack.rollback("--yes");
    assert.strictEqual(rb.status, 0, rb.output);
    const h = (await get(`${base}/health`)).json();
    assert.strictEqual(h.release, releases["blue-green"], "the previous healthy release is live again");
    assert.strictEqual(h.schema_version, 2, "the schema is back at that release's version");
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "deployed with blue-green");
    assert.ok(Number(server.ssh("ls /srv/flaskapp/shared/backups | wc -l")) >= 2, "a backup was taken before the down migration");

    // state tells the truth: the outputs name the live release, preview and up --refresh change nothing
    let out = stack.outputs();
    assert.strictEqual(out.releaseId, releases["blue-green"], "releaseId names the rolled-back-to release");
    assert.strictEqual(out.liveRelease, releases["blue-green"]);
    assert.strictEqual(out.appDirRelease, newest);
    assert.strictEqual(out.schemaVersion, 2);
    assert.strictEqual(out.releaseHistory.at(-1).releaseId, releases["blue-green"]);
    const preview = stack.preview();
    assert.strictEqual(preview.status, 0, preview.output);
    assert.match(preview.output, new RegExp(`release pinned to ${releases["blue-green"]}[\\s\\S]*appDir holds release ${newest}`));
    assert.doesNotMatch(preview.output, /^\s*[-+~]+\s+\S+:\S+\s+\S+\s+(create|update|replace|delete)/m, "preview after a rollback plans no change");
    assert.doesNotMatch(preview.output, /\d+ to (create|update|replace|delete)/);
    const refresh = stack.run(["up", "--refresh", "--yes", "--skip-preview"]);
    assert.strictEqual(refresh.status, 0, refresh.output);
    assert.doesNotMatch(refresh.output, /(created|updated|replaced)/, "up --refresh after a rollback found drift");

    // a second rollback steps further back through the healthy history (not back to `newest`)
    const rb2 = stack.rollback();
    assert.strictEqual(rb2.status, 0, rb2.output);
    assert.strictEqual((await get(`${base}/health`)).json().release, releases.rolling);
    assert.strictEqual((await get(`${base}/api/marker`)).json().marker, "deployed with rolling");
    assert.strictEqual(stack.outputs().releaseId, releases.rolling);

    // a release that never went live here is refused before anything changes
    const bad = stack.rollback("--to", "0123456789ab");
    assert.notStrictEqual(bad.status, 0, bad.output);
    assert.match(bad.output, /never went live on this server/);
    assert.strictEqual(stack.outputs().releaseId, releases.rolling);

    // --forward: appDir's release and its schema again
    const forward = stack.rollback("--forward");
    assert.strictEqual(forward.status, 0, forward.output);
    const f = (await get(`${base}/health`)).json();
    assert.strictEqual(f.release, newest);
    assert.strictEqual(f.schema_version, 3);
    out = stack.outputs();
    assert.strictEqual(out.releaseId, newest);
    assert.strictEqual(out.schemaVersion, 3);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /(created|updated|replaced)/, "the up after the roll-forward changed something");
  });
});
