// Upgrade in place: a server and stack deployed by a previous main (its program and plugin: the
// stand-in the older one was tested on, which accepted AssetArchive uploads, with the environment
// in shared/.env; or the official one) move to this tree's program on the official plugin and the
// least-privilege layout with one `pulumi up`: 0 failed requests under load, the data kept, and
// the up after it changes nothing.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { startLoad } from "./load";
import { changed, planned, PROJECT_DIR, TestStack } from "./pulumi";
import { PREVIOUS_MAINS, previousMainTree } from "./previous-main";

PREVIOUS_MAINS.forEach((from, i) => describe(`upgrade from main ${from.commit.slice(0, 7)}${from.standIn ? " (stand-in plugin)" : ""}: one up`, function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let oldTree: { dir: string; pulumiHome: string; cleanup(): void };
  const base = () => `http://${server.host}`;
  const name = `upgrade${i || ""}`;

  before(() => {
    oldTree = previousMainTree(from);
    server = startServer(name, 91 + i);
    stack = new TestStack(name, oldTree.dir);
  });
  after(() => {
    stack?.remove();
    oldTree?.cleanup();
  });

  it("the previous main deploys the app (its own program and plugin)", async () => {
    stack.env.PULUMI_HOME = oldTree.pulumiHome;
    // the same app and migrations at the same relative paths in both trees: the same release id. Without
    // the engine-specific files (NNNN_name.postgres.up/down.sql, issue 31), which no previous main knows
    // (it refuses their names): the upgrade's up brings them (copyMigrations), as a user adds them after upgrading.
    const engineSpecific = /\.postgres\.(up|down)\.sql$/;
    for (const dir of ["app", "migrations"]) {
      fs.cpSync(path.join(PROJECT_DIR, dir), path.join(oldTree.dir, ".e2e", name, dir), { recursive: true, filter: (src) => !engineSpecific.test(src) });
    }
    stack.target(server, { appDir: `.e2e/${name}/app`, migrationsDir: `.e2e/${name}/migrations`, healthTimeoutSeconds: "15" });
    stack.setConfig("secrets.SECRET_KEY", "upgrade-secret", { secret: true });
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const note = await get(`${base()}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "written before the upgrade" }) });
    assert.strictEqual(note.status, 201, note.text);
  });

  it("one up with this tree's program on the official plugin: 0 failed requests, data kept", async () => {
    const releaseBefore = (await get(`${base()}/health`)).json().release;
    const historyBefore = server.ssh(`cat /srv/flaskapp/${from.agentLayout ? "history.jsonl" : "history.log"}`);
    copyApp(name);
    copyMigrations(name);
    stack.projectDir = PROJECT_DIR;
    stack.env.PULUMI_HOME = process.env.PULUMI_HOME;
    if (i === PREVIOUS_MAINS.length - 1) {
      // the FlaskApp component's children take over the old top-level resources through aliases: nothing is deleted
      // (no delete script runs) and nothing replaced but content-addressed uploads (new scripts: a new folder)
      const preview = stack.run(["preview", "--diff"]);
      assert.strictEqual(preview.status, 0, preview.output);
      assert.ok(planned(preview.output, /update/).length > 5, `the preview's steps were read:\n${preview.output}`);
      const replacedOrDeleted = planned(preview.output, /delete|replace/).filter((s) => !/^command:remote:CopyToRemote \S+ replace$/.test(s));
      assert.deepStrictEqual(replacedOrDeleted, [], preview.output);
      // (and the release's -basis step, new and local: it names the release a delta upload builds on)
      assert.deepStrictEqual(planned(preview.output, /create/), ["flaskdeploy:index:FlaskApp app create", "pulumi-nodejs:dynamic:Resource app-release-basis create"],
        "every old resource adopted");
    }
    const load = startLoad(`${base()}/health`, { concurrency: 4, maxSeconds: 300 });
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const result = await load.stop();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(result.failures, 0, `failed requests during the upgrade: ${result.errors.join("; ")}`);
    assert.ok(result.requests > 20, `load ran (${result.requests} requests)`);
    const health = (await get(`${base()}/health`)).json();
    assert.strictEqual(health.release, releaseBefore, "the same code keeps serving");
    assert.strictEqual(stack.outputs().releaseId, releaseBefore);
    if (from.agentLayout) {
      // already JSON lines: every entry kept, in order
      assert.ok(server.ssh("cat /srv/flaskapp/history.jsonl").startsWith(historyBefore), "the release history kept");
    } else {
      // the release history moved to JSON lines, the old entries kept (and the old file, renamed)
      assert.strictEqual(server.ssh("cat /srv/flaskapp/history.log.converted"), historyBefore);
      assert.strictEqual(server.trySsh("test -e /srv/flaskapp/history.log").status, 1, "history.log is left");
      assert.strictEqual(server.ssh("stat -c '%a %U' /srv/flaskapp/history.jsonl").trim(), "644 root");
      const entries = server.ssh("cat /srv/flaskapp/history.jsonl").trim().split("\n").map((l) => JSON.parse(l));
      const old = historyBefore.trim().split("\n").map((l) => l.split(" "));
      assert.deepStrictEqual(entries.slice(0, old.length).map((e) => [e.time, e.release, e.status]), old.map((f) => [f[0], f[1], f[2]]));
      assert.deepStrictEqual(entries.slice(old.length).map((e) => [e.release, e.status]), [[releaseBefore, "live"]]);
      assert.deepStrictEqual(stack.outputs().releaseHistory.map((h: any) => h.releaseId), entries.map((e) => e.release));
    }
    const notes = (await get(`${base()}/api/notes`)).text;
    assert.match(notes, /written before the upgrade/, "data kept");
    // the least-privilege layout: the environment moved out of the app-writable shared/ into a
    // root-only file the app still gets its secret from; the adopted app user is marked
    assert.strictEqual(server.ssh("stat -c '%a %U' /etc/fdeploy/flaskapp/env /etc/fdeploy/flaskapp").trim(), "600 root\n700 root");
    assert.strictEqual(server.trySsh("test -e /srv/flaskapp/shared/.env").status, 1, "the old .env is left in shared/");
    const fp = (await get(`${base()}/api/secret-fingerprint`)).json().sha256;
    assert.strictEqual(fp, crypto.createHash("sha256").update("upgrade-secret").digest("hex"), "the app lost its secret");
    assert.match(server.ssh("getent passwd flaskapp"), /:flask-deploy app flaskapp:/);
    // a user per release generation: the live slot now runs as a slot user, not the app user, and
    // writes the database the previous version kept 0600 (converted in place, group-writable)
    const live = server.ssh("stat -c %U /proc/$(systemctl show -p MainPID --value fdeploy-flaskapp@$(cat /srv/flaskapp/slots/live 2>/dev/null || echo main).service)").trim();
    assert.match(live, /^flaskapp_[12]$/);
    const after = await get(`${base()}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "written after the upgrade" }) });
    assert.strictEqual(after.status, 201, after.text);
    const modes = server.ssh("cd /srv/flaskapp/shared && find . -path ./backups -prune -o \\( -user flaskapp -o -user flaskapp_1 -o -user flaskapp_2 \\) -printf '%m %y %p\\n'");
    for (const line of modes.trim().split("\n")) {
      const [mode, kind] = line.split(" ");
      assert.ok((parseInt(mode, 8) & (kind === "d" ? 0o070 : 0o060)) === (kind === "d" ? 0o070 : 0o060), `not group-writable after the upgrade: ${line}`);
    }
    // and what is made there later, whatever its maker's umask (the previous main's slots ran with UMask=0077)
    assert.match(server.ssh("getfacl -cp /srv/flaskapp/shared/db"), /^default:group::rwx$[\s\S]*^default:other::---$/m);
    // the uploads moved to staged FileArchives: their state no longer holds inline assets
    const state = JSON.parse(stack.stateText());
    for (const res of state.deployment.resources.filter((x: any) => x.type === "command:remote:CopyToRemote")) {
      assert.ok(typeof res.inputs.source.path === "string", `${res.urn}: source is a path archive`);
    }
  });

  it("the up after the upgrade changes nothing", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /(created|updated|replaced)/);
  });

  // (the mains before shared venvs kept the venv in the release: only the last one has venvs/)
  if (i === PREVIOUS_MAINS.length - 1) it("a code change after the upgrade reuses the venv the previous main built (the venv key is unchanged): nothing installed", async () => {
    const venvs = () => server.ssh("ls /srv/flaskapp/venvs");
    const before = venvs();
    copyApp(name).edit("wsgi.py", (s) => s + "\n# a code change after the upgrade\n");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /the venv of these requirements is built already/);
    assert.doesNotMatch(r.output, /creating venv/);
    assert.strictEqual(venvs(), before);
    assert.strictEqual((await get(`${base()}/health`)).status, 200);
  });

  // issue 24: a deploy by the previous main against a server this tree converted fails before it
  // changes anything (its first lock meets the lock folder), instead of writing its layout back
  if (i === PREVIOUS_MAINS.length - 1) it("the previous main's up against the converted server fails before it changes anything; this tree's next up converges", async () => {
    // every file's content, mode, owner and mtime (a folder's mtime moves with a temporary file)
    const snapshot = () => server.ssh("cd / && find /etc/fdeploy /etc/systemd/system /etc/nginx/sites-enabled /srv/flaskapp " +
      "\\( -path /srv/flaskapp/shared -o -path /srv/flaskapp/venvs \\) -prune -o \\( -name 'fdeploy*' -o -path '/etc/fdeploy*' -o -path '/srv/flaskapp*' \\) " +
      "\\( -type d -printf '%p %y %m %U:%G\\n' -o -printf '%p %y %m %U:%G %s %T@ %l\\n' \\) | sort; " +
      "getfacl -p /srv/flaskapp 2>/dev/null; sha256sum /srv/flaskapp/shared/db/app.sqlite3");
    const before = snapshot();
    const release = (await get(`${base()}/health`)).json().release;
    stack.projectDir = oldTree.dir;
    stack.env.PULUMI_HOME = oldTree.pulumiHome;
    stack.setConfig("env.APP_GREETING", "from the previous main");   // a change it would put live
    const old = stack.up();
    assert.notStrictEqual(old.status, 0, old.output);
    assert.match(old.output, /Is a directory/);
    assert.match(old.output, /\/run\/fdeploy\/flaskapp\.lock/);
    const now = snapshot().split("\n"), was = before.split("\n");
    assert.deepStrictEqual([...now.filter((l) => !was.includes(l)), ...was.filter((l) => !now.includes(l)).map((l) => `was: ${l}`)], [],
      "the previous main changed the converted server");
    assert.strictEqual((await get(`${base()}/health`)).json().release, release);
    stack.projectDir = PROJECT_DIR;
    stack.env.PULUMI_HOME = process.env.PULUMI_HOME;
    stack.mustRun(["config", "rm", "env.APP_GREETING"]);
    const next = stack.up();
    assert.strictEqual(next.status, 0, next.output);
    assert.strictEqual((await get(`${base()}/health`)).json().release, release);
  });
}));
