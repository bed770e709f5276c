// Issue 17, "any Flask app deploys as it is": Gunicorn's module forms, shared paths and rendered
// files, static mappings, release commands, optional SQL migrations and plain settings as text —
// each accepted in its documented form and refused with a message naming the key.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { configSchema, parseConfig } from "../../components/config";
import { parseAppModule, systemdWord } from "../../components/app-module";
import { renderTemplate } from "../../components/app-layout";
import { renderSite } from "../../components/nginx-site";
import { PROJECT_DIR, rawConfig, refusal } from "./helpers";
import { tempDir } from "../tmpdir";

const TUTORIAL = "tests/e2e/fixtures/tutorial-app";
const tutorial = (over: Record<string, unknown> = {}) =>
  rawConfig({ appDir: TUTORIAL, appModule: "flaskr:create_app()", ...over });

function errorOf(raw: ReturnType<typeof rawConfig>): string {
  return refusal(() => parseConfig(raw, PROJECT_DIR));
}

describe("any Flask app: config forms", () => {
  describe("appModule (friction 1)", () => {
    for (const ok of ["wsgi:app", "wsgi", "flaskr:create_app()", "a.b:make('prod', 2, debug=True, extra={'x': [1, 2.5, None]})", 'm:f("x")']) {
      it(`accepts ${ok}`, () => assert.strictEqual(typeof parseAppModule(ok), "object"));
    }
    for (const [bad, re] of [
      ["flaskr:create_app(os.environ)", /not a literal/], ["m:f(a=1, 2)", /positional argument after a keyword/],
      ["m:app.attr", /expected module:name/], ["m:f('x)", /unterminated string/], ["m:", /expected/], ["1m:app", /expected/],
    ] as const) {
      it(`refuses ${bad}`, () => assert.match(String(parseAppModule(bad)), re));
    }
    it("names the key and the forms in the config error", () => {
      assert.match(errorOf(tutorial({ appModule: "flaskr:create_app(os.environ)" })), /flask-deploy:appModule: not a literal.*Python literals/);
    });
    it("takes the factory form of the tutorial app", () => {
      assert.strictEqual(parseConfig(tutorial(), PROJECT_DIR).appModule, "flaskr:create_app()");
    });
    it("quotes a target for systemd only when needed", () => {
      assert.strictEqual(systemdWord("wsgi:app"), "wsgi:app");
      assert.strictEqual(systemdWord("f:create_app()"), "f:create_app()");
      assert.strictEqual(systemdWord(`f:make('a b', "%$")`), `"f:make('a b', \\"%%$$\\")"`);
    });
  });

  describe("shared paths (friction 2)", () => {
    it("links Flask's instance folder by default when the app uses it; the sample app keeps none", () => {
      assert.deepStrictEqual(parseConfig(tutorial(), PROJECT_DIR).sharedDirs, ["instance"]);
      assert.deepStrictEqual(parseConfig(rawConfig(), PROJECT_DIR).sharedDirs, []);
    });
    it("takes sharedDirs and sharedFiles (plain, or rendered from env and secrets)", () => {
      const cfg = parseConfig(tutorial({
        sharedDirs: ["instance", "uploads/"],
        sharedFiles: ["settings.cfg", { path: "instance/config.py", content: "SECRET_KEY = '${SECRET_KEY}'\nGREETING = '${APP_GREETING}'\n" }],
      }), PROJECT_DIR);
      assert.deepStrictEqual(cfg.sharedDirs, ["instance", "uploads"]);
      assert.deepStrictEqual(cfg.sharedFiles[0], { path: "settings.cfg" });
      assert.strictEqual(renderTemplate(cfg.sharedFiles[1].content!, { ...cfg.env, ...cfg.secrets }), "SECRET_KEY = 's3cr3t-value'\nGREETING = 'hi'\n");
    });
    const bad: Array<[string, Record<string, unknown>, RegExp]> = [
      ["a path with ..", { sharedDirs: ["../etc"] }, /sharedDirs\.0: sharedDirs: expected a relative path inside appDir/],
      ["an absolute path", { sharedFiles: ["/etc/passwd"] }, /sharedFiles\.0: sharedFiles: expected a relative path inside appDir/],
      ["a dotfile (.venv)", { sharedDirs: [".venv"] }, /sharedDirs: expected a relative path/],
      ["a folder the app ships", { sharedDirs: ["flaskr/static"] }, /sharedDirs: 'flaskr\/static' is part of appDir/],
      ["nested shared dirs", { sharedDirs: ["data", "data/x"] }, /'data\/x' is inside 'data'/],
      ["a plain file inside a shared dir", { sharedFiles: ["instance/x.db"] }, /'instance\/x\.db' is inside the shared dir 'instance' already/],
      ["an unknown placeholder", { sharedFiles: [{ path: "instance/config.py", content: "X='${NOPE}'" }] }, /sharedFiles: 'instance\/config\.py' uses \$\{NOPE\}, which is not set/],
      ["an unknown field", { sharedFiles: [{ path: "a", text: "x" }] }, /sharedFiles\.0: expected a path in appDir, or \{ path, content \}/],
    ];
    for (const [what, over, re] of bad) it(`refuses ${what}`, () => assert.match(errorOf(tutorial(over)), re));
  });

  describe("static files (friction 5)", () => {
    it("detects a package's static folder, else static/", () => {
      assert.deepStrictEqual(parseConfig(tutorial(), PROJECT_DIR).static, { "/static/": "flaskr/static" });
      assert.deepStrictEqual(parseConfig(rawConfig(), PROJECT_DIR).static, { "/static/": "static" });
    });
    it("takes URL prefix -> folder mappings, served by nginx with cache headers", () => {
      const cfg = parseConfig(tutorial({ static: { "/assets/": "flaskr/static" } }), PROJECT_DIR);
      const site = renderSite({ appName: "t", appRoot: "/srv/t", serverName: "_", clientMaxBodySize: "1m", proxyTimeoutSeconds: 5, static: cfg.static });
      assert.match(site, /location \/assets\/ \{\s+alias \/srv\/t\/current\/flaskr\/static\/;\s+expires 1h;/);
      assert.doesNotMatch(site, /location \/static\//);
      // a plain prefix location: the dotfile regex location still wins for /assets/.x
      assert.doesNotMatch(site, /location \^~/);
    });
    for (const [what, over, re] of [
      ["a prefix without a trailing slash", { static: { "/static": "flaskr/static" } }, /static\.\/static: expected a URL prefix ending in '\/'/],
      ["a folder that is not in the app", { static: { "/s/": "nope" } }, /static\.\/s\/: 'nope' is not a folder in appDir/],
      ["a folder outside the app", { static: { "/s/": "../app" } }, /static.*expected a relative path inside appDir/],
    ] as const) it(`refuses ${what}`, () => assert.match(errorOf(tutorial(over)), re));
  });

  describe("release commands, migrations (friction 6)", () => {
    it("takes a list of one-line commands", () => {
      assert.deepStrictEqual(parseConfig(tutorial({ releaseCommands: ["flask --app flaskr init-db"] }), PROJECT_DIR).releaseCommands, ["flask --app flaskr init-db"]);
      assert.match(errorOf(tutorial({ releaseCommands: ["a\nb"] })), /releaseCommands\.0: expected a one-line command/);
      assert.match(errorOf(tutorial({ releaseCommands: "flask db upgrade" })), /releaseCommands: /);
    });
    it("migrationsDir: 'none' turns SQL migrations off; unset uses <appDir>/migrations only if it exists", () => {
      assert.strictEqual(parseConfig(tutorial({ migrationsDir: "none" }), PROJECT_DIR).migrationsDir, undefined);
      assert.strictEqual(parseConfig(tutorial({ migrationsDir: "migrations" }), PROJECT_DIR).migrationsDir, "migrations");
      assert.strictEqual(parseConfig(tutorial(), PROJECT_DIR).migrationsDir, undefined);
      const dir = tempDir("fdeploy-unit-");
      fs.cpSync(path.join(PROJECT_DIR, TUTORIAL), path.join(dir, "app"), { recursive: true });
      assert.strictEqual(parseConfig(rawConfig({ appModule: "flaskr:create_app()" }), dir).migrationsDir, undefined);
      assert.match(errorOf(tutorial({ migrationsDir: "nope" })), /migrationsDir: 'nope' is not a directory.*'none'/);
    });
  });

  describe("plain settings as text (friction 8)", () => {
    it("takes numbers and booleans (pulumi config set --path env.WORKERS 4) as their text", () => {
      const cfg = parseConfig(tutorial({ env: { WORKERS: 4, DEBUG: false, RATIO: 0.5 }, secrets: { PIN: 1234 } }), PROJECT_DIR);
      assert.deepStrictEqual(cfg.env, { WORKERS: "4", DEBUG: "false", RATIO: "0.5" });
      assert.deepStrictEqual(cfg.secrets, { PIN: "1234" });
    });
    it("still refuses objects", () => {
      assert.match(errorOf(tutorial({ env: { X: { a: 1 } } })), /env\.X: expected a string, number or boolean/);
    });
  });

  describe("README (friction 7)", () => {
    const readme = fs.readFileSync(path.join(PROJECT_DIR, "README.md"), "utf8");
    it("has a 'Bring your own app' guide", () => {
      const guide = /## Bring your own app\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";
      for (const topic of ["gunicorn", "create_app()", "read-only", "DATABASE_PATH", "instance", "sharedFiles", "static", "SECRET_KEY", "healthPath", "releaseCommands", "Flask-Migrate"]) {
        assert.ok(guide.includes(topic), `the guide covers ${topic}`);
      }
    });
    it("documents every config key in the configuration table", () => {
      for (const key of Object.keys(configSchema.shape)) assert.match(readme, new RegExp(`^\\| \`${key}[.\`]`, "m"), key);
    });
  });
});
