// Two FlaskApps in one program, under Pulumi mocks: each child has a parent (every resource but the
// two FlaskApps lives under one of them), the apps' URNs and staging folders are distinct, each registers
// its outputs, and only the app built from stack config (legacyNames) aliases the old top-level names.
import * as assert from "assert";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseConfig } from "../../components/config";
import { FlaskApp, flaskAppArgs } from "../../components";
import { HOST_KEY, PROJECT_DIR, rawConfig, tempKeyFile } from "./helpers";

interface Registered { type: string; name: string; parent: string; urn: string; aliases: any[]; create?: string }

const FLASK_APP = "flaskdeploy:index:FlaskApp";
const OUTPUTS = ["appDirRelease", "appPath", "certificate", "fdeploy", "liveRelease", "migrationsDir", "releaseHistory", "releaseId",
  "running", "schemaVersion", "server", "strategy", "url"];

describe("FlaskApp: two apps in one program (under mocks)", function () {
  this.timeout(60000);
  const registered: Registered[] = [];
  const registeredOutputs = new Map<string, Record<string, unknown>>();
  let apps: FlaskApp[] = [];
  const settle = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));

  before(async () => {
    const raw = rawConfig({ migrationsDir: "migrations" });
    pulumi.runtime.setAllConfig(raw.values, raw.secretKeys);
    await pulumi.runtime.setMocks({
      newResource: (args) => ({ id: `${args.name}-id`, state: { running: true, ...args.inputs, stdout: `${args.name} ok\nschema_version=2`, stderr: "" } }),
      call: (args) => args.inputs,
    }, "flask-deploy", "unit-two", false);
    const monitor: any = (pulumi.runtime as any).getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, cb: any) => register(req, (err: any, resp: any) => {
      const inputs = req.getObject()?.toJavaScript();
      registered.push({
        type: req.getType(), name: req.getName(), parent: req.getParent(), urn: resp?.getUrn(),
        aliases: req.getAliasesList().map((a: any) => a.toObject()), create: inputs?.create,
      });
      cb(err, resp);
    });
    const registerOutputs = monitor.registerResourceOutputs.bind(monitor);
    monitor.registerResourceOutputs = (req: any, cb: any) => {
      registeredOutputs.set(req.getUrn(), req.getOutputs()?.toJavaScript() ?? {});
      return registerOutputs(req, cb);
    };
    // two apps on the same server (two names, two sites); the first as the stack-config adapter builds it
    const cfg = (appName: string, serverName: string) => parseConfig(rawConfig({ appName, serverName, migrationsDir: "migrations" }), PROJECT_DIR);
    apps = [
      new FlaskApp("web", { ...cfg("shop", "shop.example.com"), projectDir: PROJECT_DIR, legacyNames: true, releaseKey: "flask-deploy:release" }),
      new FlaskApp("admin", { ...cfg("backoffice", "admin.example.com"), projectDir: PROJECT_DIR }),
    ];
    for (const app of apps) await settle(app.url);
    await new Promise((r) => setTimeout(r, 500));   // every registration and output settled
  });

  const ofApp = (name: string) => {
    const app = registered.find((r) => r.type === FLASK_APP && r.name === name)!;
    const under = (r: Registered): boolean => r.parent === app.urn || registered.some((p) => p.urn === r.parent && under(p));
    return { app, children: registered.filter(under) };
  };

  it("every resource but the FlaskApps has a parent, and belongs to one of the two apps", () => {
    const roots = registered.filter((r) => !r.parent || !registered.some((p) => p.urn === r.parent));
    assert.deepStrictEqual(roots.map((r) => `${r.type} ${r.name}`).sort(), [`${FLASK_APP} admin`, `${FLASK_APP} web`]);
    const web = ofApp("web").children, admin = ofApp("admin").children;
    assert.ok(web.length >= 20, `web has its steps (${web.length})`);
    assert.strictEqual(web.length + admin.length + 2, registered.length);
    // named from the app's name
    for (const r of web) assert.match(r.name, /^web-/);
    for (const r of admin) assert.match(r.name, /^admin-/);
  });

  it("the two apps' resources have distinct URNs, and the same steps", () => {
    const urns = registered.map((r) => r.urn);
    assert.strictEqual(new Set(urns).size, urns.length, "a URN registered twice");
    const steps = (name: string) => ofApp(name).children.map((r) => `${r.type} ${r.name.slice(name.length)}`).sort();
    assert.deepStrictEqual(steps("web"), steps("admin"));
  });

  it("each app registers the outputs index.ts exports", async () => {
    for (const name of ["web", "admin"]) {
      const out = registeredOutputs.get(ofApp(name).app.urn);
      assert.ok(out, `${name}: no outputs registered`);
      assert.deepStrictEqual(Object.keys(out!).sort(), OUTPUTS);
    }
    assert.strictEqual(await settle(apps[0].url), "http://shop.example.com/");
    assert.strictEqual(await settle(apps[1].url), "http://admin.example.com/");
    assert.strictEqual(await settle(apps[1].appPath), "/srv/backoffice");
  });

  it("each app registers what fdeploy reads from the state: app, server, its own release pin key", async () => {
    const [web, admin] = [await settle(apps[0].fdeploy), await settle(apps[1].fdeploy)];
    assert.deepStrictEqual([web.appName, web.releaseKey, web.release], ["shop", "flask-deploy:release", undefined]);
    assert.deepStrictEqual([admin.appName, admin.releaseKey, admin.server.host, admin.server.port], ["backoffice", "flask-deploy:apps.admin.release", "10.213.0.10", 22]);
    assert.deepStrictEqual([admin.backup, admin.jobs], [false, []]);
    assert.ok(!("beforeChange" in web) && !("beforeChange" in admin), "no backup.beforeChange replica: the record as before");
    assert.strictEqual(admin.server.hostKey, HOST_KEY);
  });

  it("each app stages its uploads in its own folder beside Pulumi.yaml", () => {
    const [a, b] = apps.map((app) => app.stagingDir);
    assert.notStrictEqual(a, b);
    for (const dir of [a, b]) {
      assert.ok(dir.startsWith(`${PROJECT_DIR}/.fdeploy-staging/`), dir);
      assert.ok(fs.readdirSync(dir).some((f) => f.startsWith("release-")), `${dir} holds the staged release`);
    }
    const sources = (name: string) => ofApp(name).children.filter((r) => r.type === "command:remote:CopyToRemote").length;
    assert.ok(sources("web") > 0 && sources("admin") > 0);
  });

  it("aliases the old top-level names only for the stack-config app; command lines keep the old step names", () => {
    const direct = (name: string) => ofApp(name).children.filter((r) => r.parent === ofApp(name).app.urn);
    for (const r of direct("web")) {
      assert.deepStrictEqual(r.aliases.map((a) => a.spec?.name), [r.name.slice("web-".length)], r.name);
      assert.ok(r.aliases[0].spec.noparent, `${r.name}: aliased to no parent`);
    }
    for (const r of direct("admin")) assert.deepStrictEqual(r.aliases, [], r.name);
    const install = registered.find((r) => r.name === "web-release-install")!;
    assert.match(install.create!, / supervise \d+ release-install /);
  });

  it("flaskAppArgs: plain values validated by the config schema; a bad one refused naming the key, quick to print", () => {
    const server = { host: "10.213.0.10", privateKeyPath: tempKeyFile(), hostKey: HOST_KEY };
    const args = flaskAppArgs({ appName: "shop", server, workers: 3, secrets: { SECRET_KEY: "k" } }, PROJECT_DIR);
    assert.strictEqual(args.appName, "shop");
    assert.strictEqual(args.workers, 3);
    assert.throws(() => flaskAppArgs({ server, workers: "lots" }, PROJECT_DIR),
      (e: any) => e instanceof ConfigError && /flask-deploy:workers/.test(e.message) && e.stack === undefined);
  });
});
