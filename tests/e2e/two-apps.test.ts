// Two FlaskApps in one user program (tests/e2e/two-apps/), on one server: both deploy beside each
// other (their own users, /srv/<app>, units and sites), each serves its own settings, they stage
// their uploads apart, and a second up changes nothing.
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp } from "./app-copy";
import { changed, TestStack } from "./pulumi";

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
});
