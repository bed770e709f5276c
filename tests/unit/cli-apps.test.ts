// fdeploy finds its app in the stack's state (`pulumi stack export`): the FlaskApp components of any program
// (one, two — then --app —, or none: a stack deployed before FlaskApp, read from its config), in the user's
// project folder, and a rollback pins the release under that app's own key. A fake `pulumi` on PATH answers
// with the fixtures in fixtures/state/ and logs each call (folder and arguments); no server is reached.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { appsInState, chooseApp } from "../../cli/lib/apps";
import { FdeployError } from "../../cli/lib/errors";
import { configSchema, parseConfig } from "../../components/config";
import { appPin, appPinKey } from "../../components/config/pin";
import { HOST_KEY, PROJECT_DIR, rawConfig, runFdeploy, tempKeyFile } from "./helpers";
import { tempDir } from "../tmpdir";

const FIXTURES = path.join(__dirname, "fixtures", "state");
const state = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), "utf8"));
const refused = (f: () => unknown, code: number, msg: RegExp) =>
  assert.throws(f, (e: any) => e instanceof FdeployError && e.exitCode === code && msg.test(e.message));

const run = (dir: string, ...args: string[]) => runFdeploy(args, dir);

describe("fdeploy: the apps of a stack's state", () => {
  it("this repo's program: one FlaskApp, pinned by flask-deploy:release", () => {
    const apps = appsInState(state("one-app"));
    assert.deepStrictEqual(apps.map((a) => a.name), ["app"]);
    const app = chooseApp(apps, undefined, "prod");
    assert.strictEqual(app.record.appName, "notes");
    assert.strictEqual(app.record.releaseKey, "flask-deploy:release");
    assert.deepStrictEqual([app.record.backup, app.record.jobs], [true, ["cleanup"]]);
    assert.strictEqual(chooseApp(apps, "notes", "prod").name, "app", "by its appName");
  });

  it("a program with two apps that exports nothing (the state lists shop first): --app chooses (name or appName); without it, an error listing them", () => {
    const apps = appsInState(state("two-apps"));
    assert.deepStrictEqual(apps.map((a) => [a.name, a.record?.releaseKey]),
      [["blog", "flask-deploy:apps.blog.release"], ["shop", "flask-deploy:apps.shop.release"]], "sorted by name, whatever the state's order");
    refused(() => chooseApp(apps, undefined, "dev"), 2,
      /^stack dev holds 2 apps: blog \(app blogapp on root@203\.0\.113\.20\), shop \(app shop on root@203\.0\.113\.20\); choose one with --app <name>$/);
    assert.strictEqual(chooseApp(apps, "blog", "dev").record.release, "bbbbbbbbbbbb");
    assert.strictEqual(chooseApp(apps, "blogapp", "dev").name, "blog");
    refused(() => chooseApp(apps, "nope", "dev"), 2, /^--app nope: stack dev holds no such app; its apps: blog .*, shop /);
  });

  it("a stack with no FlaskApp in its state (deployed before it) has no apps there", () => {
    assert.deepStrictEqual(appsInState(state("no-app")), []);
    assert.deepStrictEqual(appsInState({}), []);
  });

  it("reads a record registered as a secret; an app registered before the record asks for an up", () => {
    const apps = appsInState(state("secret-and-old"));
    assert.strictEqual(chooseApp(apps, "shop", "dev").record.server.host, "203.0.113.20");
    refused(() => chooseApp(apps, "old", "dev"), 3, /app old of stack dev has no fdeploy record in its state yet .*: pulumi up --stack dev/);
    const cipher = state("secret-and-old");
    cipher.deployment.resources[1].outputs.fdeploy = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "v1:x" };
    refused(() => appsInState(cipher), 1, /secret fdeploy could not read/);
  });
});

describe("fdeploy: the release pin per app", () => {
  it("flask-deploy:apps.<name>.release for a FlaskApp not built from stack config", () => {
    assert.strictEqual(appPinKey("flask-deploy", "shop"), "flask-deploy:apps.shop.release");
    assert.strictEqual(appPinKey("flask-deploy", "my.app"), 'flask-deploy:apps["my.app"].release');
    const key = "flask-deploy:apps.shop.release";
    assert.deepStrictEqual(appPin(undefined, "shop", key), {});
    assert.deepStrictEqual(appPin('{"shop":{"release":"0123456789ab"},"blog":{}}', "shop", key), { release: "0123456789ab" });
    assert.deepStrictEqual(appPin({ shop: {} }, "shop", key), {}, "what config rm --path leaves");
    assert.deepStrictEqual(appPin({ blog: { release: "0123456789ab" } }, "shop", key), {}, "another app's pin");
    assert.match(appPin({ shop: { release: "HEAD" } }, "shop", key).problem!, /^flask-deploy:apps\.shop\.release: expected a kept release id/);
    assert.match(appPin("[1]", "shop", key).problem!, /expected an object of apps/);
  });

  it("the stack-config app accepts the other apps' pins and checks them", () => {
    assert.ok(configSchema.shape.apps);
    const cfg = parseConfig(rawConfig({ apps: { shop: { release: "0123456789ab" } } }), PROJECT_DIR);
    assert.strictEqual(cfg.release, undefined, "another app's pin is not this app's");
    assert.throws(() => parseConfig(rawConfig({ apps: { shop: { release: "nope" } } }), PROJECT_DIR), /flask-deploy:apps\.shop\.release: expected a kept release id/);
    assert.throws(() => parseConfig(rawConfig({ apps: { shop: { relase: "0123456789ab" } } }), PROJECT_DIR), /flask-deploy:apps\.shop\.relase: unknown setting .*known: release/);
  });
});

describe("fdeploy: the user's project folder and the stack's state, through a fake pulumi", function () {
  this.timeout(120000);   // the first command loads fdeploy's modules
  let bin: string, log: string;
  const saved = { path: process.env.PATH, cwd: process.cwd() };
  before(() => {
    bin = tempDir("fdeploy-fake-pulumi-");
    log = path.join(bin, "calls.log");
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/bash
printf '%s|%s\\n' "$PWD" "$*" >> "$FAKE_LOG"
case "$1 $2" in
  "stack export") cat "$FAKE_STATE" ;;
  "config --json") cat "$FAKE_CONFIG" ;;
  "config get") if [ -n "$FAKE_PIN" ]; then echo "$FAKE_PIN"; else echo "error: configuration key '$4' not found for stack" >&2; exit 1; fi ;;
esac
`, { mode: 0o755 });
    process.env.PATH = `${bin}:${saved.path}`;
    process.env.FAKE_LOG = log;
  });
  after(() => {
    process.env.PATH = saved.path;
    process.chdir(saved.cwd);
    for (const k of ["FAKE_LOG", "FAKE_STATE", "FAKE_CONFIG", "FAKE_PIN"]) delete process.env[k];
  });
  beforeEach(() => fs.writeFileSync(log, ""));
  const calls = () => fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => l.split("|"));


  const userProject = () => {
    const dir = tempDir("fdeploy-user-project-");
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: shopsite\nruntime: nodejs\n");
    fs.mkdirSync(path.join(dir, "src", "deep"), { recursive: true });
    return dir;
  };

  it("runs pulumi in the user's project folder (found from a subfolder); two apps and no --app: the error lists them", async () => {
    const dir = userProject();
    process.env.FAKE_STATE = path.join(FIXTURES, "two-apps.json");
    const r = await run(path.join(dir, "src", "deep"), "status", "--stack", "dev");
    assert.strictEqual(r.code, 2, r.err);
    assert.match(r.err, /stack dev holds 2 apps: blog .*, shop .*; choose one with --app <name>/);
    assert.deepStrictEqual(calls(), [[fs.realpathSync(dir), "stack export --show-secrets --stack dev --non-interactive"]]);
  });

  it("no Pulumi.yaml from the working folder up: an error saying where to run it", async () => {
    const r = await run(tempDir("fdeploy-no-project-"), "status", "--stack", "dev");
    assert.strictEqual(r.code, 2);
    assert.match(r.err, /no Pulumi project here: run fdeploy in your project's folder \(where Pulumi\.yaml is\)/);
    assert.deepStrictEqual(calls(), []);
  });

  it("rollback --forward --app blog unpins blog's own key, then ups", async () => {
    const dir = userProject();
    process.env.FAKE_STATE = path.join(FIXTURES, "two-apps.json");
    process.env.FAKE_PIN = "bbbbbbbbbbbb";
    const r = await run(dir, "rollback", "--forward", "--stack", "dev", "--app", "blog");
    assert.strictEqual(r.code, 0, r.err);
    assert.deepStrictEqual(calls().map((c) => c[1]), [
      "stack export --show-secrets --stack dev --non-interactive",
      "config get --path flask-deploy:apps.blog.release --stack dev --non-interactive",
      "config rm --path flask-deploy:apps.blog.release --stack dev --non-interactive",
      "up --yes --skip-preview --stack dev --non-interactive",
    ]);
    delete process.env.FAKE_PIN;
    const none = await run(dir, "rollback", "--forward", "--stack", "dev", "--app", "shop");
    assert.strictEqual(none.code, 2);
    assert.match(none.err, /app shop of stack dev has no pinned release \(flask-deploy:apps\.shop\.release\)/);
  });

  it("a stack deployed before FlaskApp: its flask-deploy:* config names the app, pinned by flask-deploy:release", async () => {
    process.env.FAKE_STATE = path.join(FIXTURES, "no-app.json");
    const config = path.join(tempDir("fdeploy-config-"), "config.json");
    fs.writeFileSync(config, JSON.stringify({
      "flask-deploy:appName": { value: "notes", secret: false },
      "flask-deploy:server": { value: JSON.stringify({ host: "203.0.113.10", privateKeyPath: tempKeyFile(), hostKey: HOST_KEY }), secret: false },
    }));
    process.env.FAKE_CONFIG = config;
    process.env.FAKE_PIN = "aaaaaaaaaaaa";
    const r = await run(PROJECT_DIR, "rollback", "--forward", "--stack", "old");
    assert.strictEqual(r.code, 0, r.err);
    assert.deepStrictEqual(calls().map((c) => c[1]).slice(1, 4), [
      "config --json --show-secrets --stack old --non-interactive",
      "config get --path flask-deploy:release --stack old --non-interactive",
      "config rm --path flask-deploy:release --stack old --non-interactive",
    ]);
    delete process.env.FAKE_PIN;
  });
});
