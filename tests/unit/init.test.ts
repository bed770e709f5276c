// `flask-deploy init` (cli/init/): what it detects in real app layouts (the sample app, Flask's tutorial,
// a Flask-Migrate app, apps at the top or in a folder), what it cannot detect (an error naming the option),
// and its rule: an existing file is never overwritten (.gitignore and package.json only gain what they lack).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { appNameFrom, detect, InitError } from "../../cli/init/detect";
import { programFiles, Versions, writeProgram } from "../../cli/init/files";
import { report, versions } from "../../cli/init/main";
import { tempDir } from "../tmpdir";
import { runInit } from "./init-run";

const ROOT = path.resolve(__dirname, "../..");
const FIXTURES = path.join(ROOT, "tests/e2e/fixtures");
const V: Versions = { self: "0.1.0", pulumi: "3.248.0", typescript: "5.9.3", tsNode: "10.9.2", typesNode: "20.19.43" };

/** A new project folder named NAME holding copies of FROM (project path -> source path) and files (path -> text). */
function project(name: string, from: Record<string, string>, files: Record<string, string> = {}): string {
  const dir = path.join(tempDir("fdeploy-init-"), name);
  fs.mkdirSync(dir);
  for (const [to, src] of Object.entries(from)) fs.cpSync(src, path.join(dir, to), { recursive: true, filter: (s) => !s.includes("__pycache__") });
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

describe("flask-deploy init: detection", () => {
  it("the sample app in app/ with the project's SQL migrations", () => {
    const d = detect(project("notes", { app: path.join(ROOT, "app"), migrations: path.join(ROOT, "migrations") }));
    assert.deepStrictEqual(d, {
      appDir: "app", appModule: "wsgi:app", staticDir: "static", migrationsDir: "migrations", releaseCommands: [],
      requirements: "app/requirements.txt", gunicorn: true, appName: "notes",
    });
  });

  it("Flask's tutorial at the top: a factory with defaults, the package's static folder, no migrations", () => {
    const d = detect(project("Flaskr Tutorial", { ".": path.join(FIXTURES, "tutorial-app") }));
    assert.strictEqual(d.appDir, ".");
    assert.strictEqual(d.appModule, "flaskr:create_app()");
    assert.strictEqual(d.staticDir, "flaskr/static");
    assert.strictEqual(d.migrationsDir, "none");
    assert.deepStrictEqual(d.releaseCommands, []);
    assert.strictEqual(d.appName, "flaskr-tutorial");
  });

  it("Flask-Migrate's migrations: no SQL migrations, `flask db upgrade` as a release command", () => {
    const d = detect(project("shop", { ".": path.join(FIXTURES, "sqla-app") }));
    assert.strictEqual(d.appModule, "app:create_app()");
    assert.strictEqual(d.migrationsDir, "none");
    assert.deepStrictEqual(d.releaseCommands, ["flask --app 'app:create_app()' db upgrade"]);
  });

  it("an app object beats a factory; a factory that needs arguments is not Gunicorn's target; a literal static_folder", () => {
    const dir = project("api", {}, {
      "requirements.txt": "flask\n",
      "factory.py": "def create_app(config):\n    pass\n",
      "server.py": "from flask import Flask\napi = Flask(__name__, static_folder='assets')\n",
      "assets/site.css": "",
    });
    const d = detect(dir);
    assert.strictEqual(d.appModule, "server:api");
    assert.strictEqual(d.staticDir, "assets");
    assert.strictEqual(d.gunicorn, false, "requirements.txt lists no gunicorn: init warns");
    assert.match(report(d, { wrote: [], left: [], added: [] }), /does not list gunicorn/);
  });

  it("what it cannot detect: an error naming the option that says it", () => {
    assert.throws(() => detect(project("empty", {}, { "README.md": "" })), (e: Error) => e instanceof InitError && /--app-dir/.test(e.message));
    assert.throws(() => detect(project("nomod", {}, { "requirements.txt": "flask\n", "util.py": "x = 1\n" })),
      (e: Error) => e instanceof InitError && /--module/.test(e.message));
    const two = project("two", {}, { "a/requirements.txt": "", "a/wsgi.py": "app = make()\n", "b/requirements.txt": "", "b/wsgi.py": "app = make()\n" });
    assert.throws(() => detect(two), /several folders hold a Flask app \(a, b\): name one with --app-dir/);
    assert.strictEqual(detect(two, { appDir: "b" }).appDir, "b");
    assert.strictEqual(detect(two, { appDir: "a", appModule: "wsgi:create()" }).appModule, "wsgi:create()");
  });

  it("the app's name: the folder's, as a valid appName; else flaskapp", () => {
    assert.strictEqual(appNameFrom("/x/My_Shop"), "my-shop");
    assert.strictEqual(appNameFrom("/x/2048"), "flaskapp");
    assert.strictEqual(appNameFrom("/x/deploy"), "flaskapp", "a reserved account");
  });
});

describe("flask-deploy init: the files and the no-overwrite rule", () => {
  const sample = () => project("notes", { app: path.join(ROOT, "app"), migrations: path.join(ROOT, "migrations") });
  const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]));

  it("a fresh repository gets every file; the stack files hold the detected settings", () => {
    const dir = sample();
    const r = writeProgram(dir, detect(dir), V);
    assert.deepStrictEqual(r.wrote.sort(), [".gitignore", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "Pulumi.yaml", "index.ts", "package.json", "tsconfig.json"]);
    assert.deepStrictEqual(r.left, []);
    const dev = fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8");
    for (const line of ["flask-deploy:appName: notes", "flask-deploy:appDir: app", "flask-deploy:appModule: wsgi:app",
      "flask-deploy:migrationsDir: migrations", "    /static/: static", "flask-deploy:strategy: restart"]) assert.ok(dev.includes(`${line}\n`), line);
    assert.match(fs.readFileSync(path.join(dir, "Pulumi.prod.yaml"), "utf8"), /flask-deploy:strategy: blue-green\n/);
    assert.match(fs.readFileSync(path.join(dir, "index.ts"), "utf8"), /new FlaskApp\("app", flaskAppArgsFromConfig\(\)\)/);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    assert.deepStrictEqual(pkg.dependencies, { "flask-deploy": "^0.1.0", "@pulumi/pulumi": "^3.248.0", typescript: "^5.9.3", "ts-node": "^10.9.2" });
    assert.deepStrictEqual(pkg.devDependencies, { "@types/node": "^20.19.43" });
    assert.strictEqual(fs.readFileSync(path.join(dir, ".gitignore"), "utf8"), "node_modules/\n.fdeploy-staging/\n.env\n");
  });

  it("never overwrites a file: existing ones are left byte for byte and reported; a second run changes nothing", () => {
    const dir = sample();
    const mine = { "index.ts": "// my own program\n", "Pulumi.yaml": "name: mine\nruntime: nodejs\n", "tsconfig.json": "{}\n" };
    for (const [f, text] of Object.entries(mine)) fs.writeFileSync(path.join(dir, f), text);
    const r = writeProgram(dir, detect(dir), V);
    assert.deepStrictEqual(r.left.sort(), ["Pulumi.yaml", "index.ts", "tsconfig.json"]);
    for (const [f, text] of Object.entries(mine)) assert.strictEqual(fs.readFileSync(path.join(dir, f), "utf8"), text, f);
    assert.match(report(detect(dir), r), /left index\.ts \(it exists; nothing changed\)/);
    const before = snapshot(dir);
    const again = writeProgram(dir, detect(dir), V);
    assert.deepStrictEqual(again.wrote, []);
    assert.deepStrictEqual(again.added, []);
    assert.deepStrictEqual(snapshot(dir), before);
  });

  it(".gitignore and package.json only gain what they lack; what they have stays as it is", () => {
    const dir = sample();
    fs.writeFileSync(path.join(dir, ".gitignore"), "*.pyc\n/node_modules");   // no final newline; node_modules as the user wrote it
    const pkg = { name: "notes", version: "2.0.0", scripts: { lint: "x" }, dependencies: { "flask-deploy": "file:../flask-deploy-0.1.0.tgz" },
      devDependencies: { typescript: "5.4.0" } };
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(pkg, null, 4) + "\n");
    const r = writeProgram(dir, detect(dir), V);
    assert.strictEqual(fs.readFileSync(path.join(dir, ".gitignore"), "utf8"), "*.pyc\n/node_modules\n.fdeploy-staging/\n.env\n");
    const after = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    assert.strictEqual(after.dependencies["flask-deploy"], "file:../flask-deploy-0.1.0.tgz");
    assert.strictEqual(after.devDependencies.typescript, "5.4.0");
    assert.deepStrictEqual({ ...after, dependencies: undefined, devDependencies: undefined }, { ...pkg, dependencies: undefined, devDependencies: undefined });
    assert.match(fs.readFileSync(path.join(dir, "package.json"), "utf8"), /^\{\n {4}"name"/, "the file's indentation is kept");
    assert.deepStrictEqual(r.added, [
      { file: ".gitignore", what: [".fdeploy-staging/", ".env"] },
      { file: "package.json", what: ["@pulumi/pulumi@^3.248.0", "ts-node@^10.9.2", "@types/node@^20.19.43"] },
    ]);
  });

  it("the stack files are YAML the program reads: values that need quotes are quoted", () => {
    const d = { ...detect(project("shop", { ".": path.join(FIXTURES, "sqla-app") })) };
    const dev = programFiles(d)["Pulumi.dev.yaml"];
    const yaml = require("js-yaml").load(dev).config;
    assert.strictEqual(yaml["flask-deploy:appModule"], "app:create_app()");
    assert.deepStrictEqual(yaml["flask-deploy:releaseCommands"], ["flask --app 'app:create_app()' db upgrade"]);
    assert.deepStrictEqual(yaml["flask-deploy:static"], { "/static/": "app/static" });
  });

  it("the versions it adds are the package's own (each one set)", () => {
    const v = versions();
    const pkg = require("../../package.json");
    assert.strictEqual(v.self, pkg.version);
    for (const [k, x] of Object.entries(v)) assert.match(String(x), /^\d+\.\d+\.\d+$/, k);
  });

  it("the command: init in the current folder, the next three commands; a clear error otherwise", () => {
    const dir = sample();
    const first = runInit(dir);
    assert.strictEqual(first.code, 0);
    const sub = runInit(path.join(dir, "migrations"));
    assert.strictEqual(sub.code, 2);
    const text = first.out + sub.out;
    const next = text.split("\n").slice(text.split("\n").findIndex((l) => l.startsWith("Next")) + 1).filter((l) => l.trim());
    assert.strictEqual(next.length, 3, text);
    assert.match(next[2], /pulumi up$/);
    assert.match(first.err + sub.err, /^flask-deploy init: no requirements\.txt/);
  });
});
