// Two FlaskApps in one user program (tests/e2e/two-apps/), on one server: both deploy beside each
// other (their own users, /srv/<app>, units and sites), each serves its own settings, they stage
// their uploads apart, and a second up changes nothing. fdeploy, run in the program's folder, finds
// each app in the stack's state (the program exports no server) with --app, and a rollback of one
// app pins its own release key and leaves the other alone.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp } from "./app-copy";
import { changed, PROJECT_DIR, RunResult, TestStack } from "./pulumi";

describe("two FlaskApps in one program, on one server", function () {
  this.timeout(900000);
  const programDir = path.join(__dirname, "two-apps");
  let server: TestServer;
  let stack: TestStack;

  before(() => {
    server = startServer("two-apps", 191);
    const app = copyApp("two-apps");
    stack = new TestStack("two-apps", programDir);
    for (const [k, v] of Object.entries({ host: server.host, keyPath: server.keyPath, hostKey: server.hostKey, appDir: app.rel })) {
      stack.mustRun(["config", "set", k], v);
    }
  });
  after(() => stack?.remove());

  // a request for APP's site (fetch does not send a Host header of its own choosing)
  const page = (app: string, p: string) => new Promise<{ status: number; text: string; json(): any }>((resolve, reject) => {
    http.get({ host: server.host, port: 80, path: p, headers: { host: `${app}.test`, connection: "close" }, timeout: 10000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, json: () => JSON.parse(text) }));
    }).on("error", reject);
  });

  it("one up deploys both apps beside each other; each serves its own site and settings", async () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const out = stack.outputs();
    assert.strictEqual(out.shopUrl, "http://shop.test/");
    assert.strictEqual(out.blogUrl, "http://blog.test/");
    for (const app of ["shop", "blog"]) {
      const health = await page(app, "/health");
      assert.strictEqual(health.status, 200, health.text);
      assert.strictEqual(health.json().release, out[`${app}Release`]);
      assert.match((await page(app, "/")).text, new RegExp(`Hello from ${app}`));
      assert.match(server.ssh(`test -d /srv/${app}/releases && getent passwd ${app}`), new RegExp(`^${app}:`), `${app}: its own user and folder`);
    }
    // each app's steps are its own resources, under its own component
    const state = JSON.parse(stack.stateText()).deployment.resources.map((x: any) => x.urn as string);
    for (const app of ["shop", "blog"]) {
      assert.ok(state.includes(`urn:pulumi:two-apps::fdeploy-two-apps::flaskdeploy:index:FlaskApp$flaskdeploy:index:Activation$command:remote:Command::${app}-activation-switch`), app);
    }
    // two staging folders beside the program's Pulumi.yaml
    assert.strictEqual(new Set(out.staging).size, 2);
    for (const dir of out.staging as string[]) {
      assert.strictEqual(path.dirname(dir), path.join(programDir, ".fdeploy-staging"));
      assert.ok(fs.readdirSync(dir).some((f) => f.startsWith("release-")), dir);
    }
  });

  it("a second up changes nothing", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /(created|updated|replaced)/);
  });

  // fdeploy as a user runs it: in the program's folder (not the package's), with the stack's own backend
  const fdeploy = (...words: string[]): RunResult => {
    const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...words, "--stack", stack.name, "--config-file", stack.configFile],
      { cwd: programDir, env: stack.env, encoding: "utf8", timeout: 600000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", output: (r.stdout ?? "") + (r.stderr ?? "") };
  };
  const status = (app: string) => {
    const r = fdeploy("status", "--app", app, "--json");
    assert.strictEqual(r.status, 0, r.output);
    return JSON.parse(r.stdout);
  };
  const pin = () => stack.run(["config", "get", "--path", "flask-deploy:apps.shop.release"]);
  let first: Record<string, string>;

  it("fdeploy finds each app in the stack's state: status --app; without --app an error naming both", () => {
    const out = stack.outputs();
    assert.strictEqual(out.server, undefined, "the program exports no server");
    first = { shop: out.shopRelease, blog: out.blogRelease };
    const r = fdeploy("status");
    assert.strictEqual(r.status, 2, r.output);
    assert.match(r.stderr, /stack two-apps holds 2 apps: blog \(app blog on root@[\d.]+\), shop \(app shop on root@[\d.]+\); choose one with --app <name>/);
    for (const app of ["shop", "blog"]) {
      const st = status(app);
      assert.deepStrictEqual([st.app, st.release, st.health.ok], [app, first[app], true], JSON.stringify(st));
    }
    const none = fdeploy("status", "--app", "nope");
    assert.strictEqual(none.status, 2);
    assert.match(none.stderr, /--app nope: stack two-apps holds no such app; its apps: blog .*, shop /);
  });

  it("a rollback of one app pins its own key (flask-deploy:apps.<name>.release) and leaves the other alone", async () => {
    const v2 = copyApp("two-apps-shop2");
    v2.edit("wsgi.py", (s) => `${s}\n# shop v2\n`);
    stack.setConfig("shopAppDir", v2.rel);
    const up = stack.up();
    assert.strictEqual(up.status, 0, up.output);
    assert.deepStrictEqual(changed(up.output).filter((n) => !n.startsWith("shop-")), [], "only shop's steps");
    const second = stack.outputs().shopRelease;
    assert.notStrictEqual(second, first.shop);
    assert.strictEqual((await page("shop", "/health")).json().release, second);

    const rb = fdeploy("rollback", "--app", "shop", "--yes");
    assert.strictEqual(rb.status, 0, rb.output);
    assert.match(rb.stdout, /pinned by the stack's `flask-deploy:apps\.shop\.release` setting/);
    assert.deepStrictEqual(changed(rb.stdout).filter((n) => !n.startsWith("shop-")), [], "blog's steps untouched");
    assert.strictEqual(pin().stdout.trim(), first.shop);
    assert.strictEqual((await page("shop", "/health")).json().release, first.shop);
    assert.strictEqual(status("shop").release, first.shop);
    assert.strictEqual((await page("blog", "/health")).json().release, first.blog);
    const blog = status("blog");
    assert.deepStrictEqual([blog.release, blog.lastDeploy.release], [first.blog, first.blog], "blog: no deploy since its first");

    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), [], "the pin holds: an up changes nothing");

    const fwd = fdeploy("rollback", "--app", "shop", "--forward");
    assert.strictEqual(fwd.status, 0, fwd.output);
    assert.notStrictEqual(pin().status, 0, "unpinned");
    assert.strictEqual((await page("shop", "/health")).json().release, second);
    assert.strictEqual((await page("blog", "/health")).json().release, first.blog);
  });
});
