// Upgrade in place: a server and stack deployed by the previous main (its program, with the
// command-plugin stand-in it was tested on, which accepted AssetArchive uploads, and its layout
// with the environment in shared/.env) move to this tree's program on the official plugin and the
// least-privilege layout with one `pulumi up`: 0 failed requests under load, the data kept, and
// the up after it changes nothing.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { startLoad } from "./load";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";
import { previousMainTree } from "./previous-main";

describe("upgrade: a stack deployed by the previous main moves to the official plugin with one up", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let oldTree: { dir: string; pulumiHome: string; cleanup(): void };
  const base = () => `http://${server.host}`;

  before(() => {
    oldTree = previousMainTree();
    server = startServer("upgrade", 91);
    stack = new TestStack("upgrade", oldTree.dir);
  });
  after(() => {
    stack?.remove();
    oldTree?.cleanup();
  });

  it("the previous main deploys the app (its own program and plugin)", async () => {
    stack.env.PULUMI_HOME = oldTree.pulumiHome;
    // the same app and migrations at the same relative paths in both trees: the same release id
    for (const dir of ["app", "migrations"]) {
      fs.cpSync(path.join(PROJECT_DIR, dir), path.join(oldTree.dir, ".e2e", "upgrade", dir), { recursive: true });
    }
    stack.target(server, { appDir: ".e2e/upgrade/app", migrationsDir: ".e2e/upgrade/migrations", healthTimeoutSeconds: "15" });
    stack.setConfig("secrets.SECRET_KEY", "upgrade-secret", { secret: true });
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const note = await get(`${base()}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "written before the upgrade" }) });
    assert.strictEqual(note.status, 201, note.text);
  });

  it("one up with this tree's program on the official plugin: 0 failed requests, data kept", async () => {
    const releaseBefore = (await get(`${base()}/health`)).json().release;
    copyApp("upgrade");
    copyMigrations("upgrade");
    stack.projectDir = PROJECT_DIR;
    stack.env.PULUMI_HOME = process.env.PULUMI_HOME;
    const load = startLoad(`${base()}/health`, { concurrency: 4, maxSeconds: 300 });
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const result = await load.stop();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(result.failures, 0, `failed requests during the upgrade: ${result.errors.join("; ")}`);
    assert.ok(result.requests > 20, `load ran (${result.requests} requests)`);
    const health = (await get(`${base()}/health`)).json();
    assert.strictEqual(health.release, releaseBefore, "the same code keeps serving");
    assert.strictEqual(stack.outputs().releaseId, releaseBefore);
    const notes = (await get(`${base()}/api/notes`)).text;
    assert.match(notes, /written before the upgrade/, "data kept");
    // the least-privilege layout: the environment moved out of the app-writable shared/ into a
    // root-only file the app still gets its secret from; the adopted app user is marked
    assert.strictEqual(server.ssh("stat -c '%a %U' /etc/fdeploy/flaskapp/env /etc/fdeploy/flaskapp").trim(), "600 root\n700 root");
    assert.strictEqual(server.trySsh("test -e /srv/flaskapp/shared/.env").status, 1, "the old .env is left in shared/");
    const fp = (await get(`${base()}/api/secret-fingerprint`)).json().sha256;
    assert.strictEqual(fp, crypto.createHash("sha256").update("upgrade-secret").digest("hex"), "the app lost its secret");
    assert.match(server.ssh("getent passwd flaskapp"), /:flask-deploy app flaskapp:/);
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
});
