// Deploying from a CI runner: a fresh copy of the project (`npm ci`: the program's TypeScript is a
// dev dependency of the package), as a non-root SSH user with passwordless sudo (`server.user: deploy`),
// on the official plugin: deploy, no-op, destroy.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { addSudoUser, startServer, TestServer } from "../servers";
import { get } from "./app-copy";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";
import { tempDir } from "../tmpdir";

/** The project's files (as git sees them, committed or not) in a new folder, with `npm ci`. */
function prodOnlyCopy(): string {
  const dir = tempDir("fdeploy-prod-only-");
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: PROJECT_DIR, encoding: "utf8" })
    .split("\0").filter((f) => f && fs.existsSync(path.join(PROJECT_DIR, f)));
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.copyFileSync(path.join(PROJECT_DIR, f), path.join(dir, f));
  }
  // --ignore-scripts: @pulumi/command's install hook would download its plugin (installed here already)
  execFileSync("npm", ["ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
    { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  return dir;
}

describe("sudo user: deploy as `deploy` with sudo, from a fresh npm ci", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let copy: string;

  before(() => {
    server = startServer("sudo", 81);
    addSudoUser(server);
    copy = prodOnlyCopy();
    stack = new TestStack("sudo", copy);
    stack.target(server, { "server.user": "deploy", migrationsDir: "migrations", healthTimeoutSeconds: "15" });
    stack.setConfig("secrets.SECRET_KEY", "sudo-secret", { secret: true });
  });
  after(() => {
    stack?.remove();
    if (copy) fs.rmSync(copy, { recursive: true, force: true });
  });

  // (a program of the user's own deploys from production dependencies only: tests/e2e/package.test.ts)
  it("the copy has what the deploy needs", () => {
    for (const dep of ["typescript", "@pulumi/pulumi", "@pulumi/command"]) {
      assert.ok(fs.existsSync(path.join(copy, "node_modules", dep)), `${dep} is installed`);
    }
  });

  it("a preview of the first deploy does not claim the app runs already", () => {
    const p = stack.run(["preview"]);
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /\brunning\s*:/, "the preview lists the outputs");
    assert.doesNotMatch(p.output, /\brunning\s*:\s*true/, "before any deploy, nothing runs");
  });

  it("deploys through sudo: the app serves, uploads sit in the deploy user's home", async () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const health = await get(`http://${server.host}/health`);
    assert.strictEqual(health.status, 200, health.text);
    assert.strictEqual(health.json().release, stack.outputs().releaseId);
    assert.match(server.ssh("ls /home/deploy/.fdeploy/flaskapp"), /scripts-[0-9a-f]{12}/);
    assert.strictEqual(stack.outputs().server, `deploy@${server.host}:22`);
  });

  it("a second up changes nothing", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
  });

  it("destroy removes the app and its uploads through sudo, and keeps the data", () => {
    const r = stack.destroy();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.trySsh("test -e /etc/systemd/system/fdeploy-flaskapp@.service").status, 1);
    assert.strictEqual(server.trySsh("test -f /srv/flaskapp/shared/db/app.sqlite3").status, 0);
    // the uploads in the SSH user's home go too (under sudo, $HOME would have been root's)
    assert.strictEqual(server.ssh("ls /home/deploy/.fdeploy/flaskapp | grep -c -E '^(uploads|migrations-)' || true").trim(), "0");
  });

  it("purge through sudo deletes the kept data, the app's users and the deploy user's upload folder", () => {
    const r = stack.purge("flaskapp");
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, /^purged flaskapp: \/srv\/flaskapp \(database, backups\)/m);
    assert.doesNotMatch(r.stdout, /"ok"/, "the agent's message, not its JSON");
    for (const p of ["/srv/flaskapp", "/etc/fdeploy/flaskapp", "/etc/fdeploy/flaskapp.conf", "/home/deploy/.fdeploy/flaskapp"]) {
      assert.strictEqual(server.trySsh(`test -e ${p}`).status, 1, `${p} is left`);
    }
    for (const u of ["flaskapp", "flaskapp_1", "flaskapp_2"]) assert.strictEqual(server.trySsh(`id ${u}`).status, 1, `the user ${u} is left`);
    assert.strictEqual(server.ssh("getent passwd | grep -c '^fdbuild-' || true").trim(), "0", "the build user is left");
    assert.strictEqual(server.trySsh("id deploy").status, 0, "the SSH user stays");
  });
});
