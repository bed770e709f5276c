// Issue 17, "any Flask app deploys as it is": the app of Flask's own tutorial (tests/e2e/fixtures/
// tutorial-app: factory create_app(), instance config.py with SECRET_KEY, SQLite file in the
// instance folder, package static folder, schema by `flask init-db`, login sessions) deployed with
// no change to its code — only stack config and a requirements.txt — then one case per friction of
// the issue. One server (anyapp, .111) carries the tutorial app and, for a first deploy that must
// fail fast, a second, broken app.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { addWheels, startServer, TestServer } from "../servers";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";

const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/tutorial-app");
const SECRET = `tutorial-${crypto.randomBytes(12).toString("hex")}`;
const TIMEOUT = 120; // health timeout: every failure below must come well before it

// issue 26's second app: Flask-SQLAlchemy + Flask-Migrate, DATABASE_URL, static/ inside the package,
// logs/ written at import, an older Gunicorn pin, an sdist-only dependency
const SQLA_FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/sqla-app");

/** A working copy of the fixture in .e2e/<name>/app (appDir must be inside the project). */
function copyFixture(name: string, from: string = FIXTURE): { rel: string; dir: string } {
  const rel = path.join(".e2e", name, "app");
  const dir = path.join(PROJECT_DIR, rel);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(from, dir, { recursive: true, filter: (s) => !s.includes("__pycache__") });
  return { rel, dir };
}

interface Res { status: number; text: string; headers: Headers }
async function http(url: string, init: RequestInit & { cookie?: string } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...(init.cookie ? { cookie: init.cookie } : {}) };
  if (typeof init.body === "string") headers["content-type"] = "application/x-www-form-urlencoded";
  const r = await fetch(url, { ...init, headers, redirect: "manual", signal: AbortSignal.timeout(10000) });
  return { status: r.status, text: await r.text(), headers: r.headers };
}

/** Flask's session cookie (itsdangerous: HMAC-SHA1, key derived with salt cookie-session) signed with KEY? */
function signedWith(cookie: string, key: string): boolean {
  const i = cookie.lastIndexOf(".");
  const derived = crypto.createHmac("sha1", key).update("cookie-session").digest();
  return crypto.createHmac("sha1", derived).update(cookie.slice(0, i)).digest("base64url") === cookie.slice(i + 1);
}

const OLD_GUNICORN = "21.2.0";

async function timedUp(stack: TestStack): Promise<{ status: number; output: string; seconds: number }> {
  const t0 = Date.now();
  const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
  return { ...r, seconds: (Date.now() - t0) / 1000 };
}

describe("any app: the Flask tutorial app, deployed as it is", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: { rel: string; dir: string };
  let base: string;
  let cookie = "";
  const live = () => server.ssh("readlink /srv/flaskapp/current").trim().split("/").pop();

  before(() => {
    addWheels(path.join(FIXTURE, "requirements.txt"));
    // an older Gunicorn pin (issue 26): its wheel too, before the server boots
    const oldPin = path.join(PROJECT_DIR, ".e2e", "anyapp-old-gunicorn.txt");
    fs.mkdirSync(path.dirname(oldPin), { recursive: true });
    fs.writeFileSync(oldPin, `gunicorn==${OLD_GUNICORN}\n`);
    addWheels(oldPin, path.join(SQLA_FIXTURE, "requirements.txt"));
    server = startServer("anyapp", 111);
    base = `http://${server.host}`;
    app = copyFixture("anyapp");
    stack = new TestStack("anyapp");
    // the whole adaptation to this deploy tool: stack config
    stack.target(server, {
      appDir: app.rel, appModule: "flaskr:create_app()", migrationsDir: "none", healthPath: "/",
      healthTimeoutSeconds: String(TIMEOUT), "releaseCommands[0]": "test -f instance/flaskr.sqlite || flask --app flaskr init-db",
      "sharedFiles[0].path": "instance/config.py",
    });
    stack.setConfig("sharedFiles[0].content", "SECRET_KEY = '${SECRET_KEY}'\n");
    stack.setConfig("secrets.SECRET_KEY", SECRET, { secret: true });
    stack.mustRun(["config", "set", "--path", "env.WORKERS", "4"]); // stored as a number (friction 8)
  });
  after(() => stack?.remove());

  it("the first deploy succeeds on the first try", async () => {
    const r = await timedUp(stack);
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      first deploy: ${r.seconds.toFixed(1)} s`);
    assert.ok(!r.output.includes(SECRET), "the secret is in pulumi's output");
    assert.match(r.output, /appDir: shipping \d+ files; left out by rule: \d+/, "the preview says what is shipped (issue 26)");
    assert.doesNotMatch(r.output, /no SECRET_KEY/, "the rendered instance/config.py sets one");
    assert.match(server.ssh("sqlite3 /srv/flaskapp/shared/instance/flaskr.sqlite .tables"), /post\s+user/, "the release command made the schema");
    assert.doesNotMatch(server.ssh("cat /srv/flaskapp/history.jsonl"), /"status": "failed"/);
    assert.strictEqual((await http(`${base}/`)).status, 200);
  });

  it("friction 2: the instance folder is shared and config.py holds the stack's secret (root:app 0640, read-only to the app)", () => {
    const rel = `/srv/flaskapp/releases/${live()}`;
    assert.strictEqual(server.ssh(`readlink ${rel}/instance`).trim(), "/srv/flaskapp/shared/instance");
    // made by the release command, as the new release's slot user; group-writable for the other one
    assert.match(server.ssh("stat -c '%U %G %a' /srv/flaskapp/shared/instance/flaskr.sqlite").trim(), /^flaskapp_[12] flaskapp 6[67]0$/);
    assert.strictEqual(server.ssh("readlink /srv/flaskapp/shared/instance/config.py").trim(), "/srv/flaskapp/files/instance/config.py");
    assert.strictEqual(server.ssh("stat -c '%a %U %G' /srv/flaskapp/files/instance/config.py /srv/flaskapp/files").trim(), "640 root flaskapp\n750 root flaskapp");
    assert.notStrictEqual(server.trySsh("runuser -u flaskapp -- sh -c 'echo x >> /srv/flaskapp/files/instance/config.py'").status, 0, "the app can change its rendered config");
    assert.strictEqual(server.ssh("stat -c %a /etc/fdeploy/flaskapp/env").trim(), "600");
    assert.ok(!stack.stateText().includes(SECRET), "the rendered file's secret is in the state in plaintext");
    assert.ok(!server.ssh("journalctl --no-pager -o cat").includes(SECRET), "the secret is in the journal");
  });

  it("login works, with a session signed by the stack's SECRET_KEY (not the app's 'dev' default)", async () => {
    const form = "username=ada&password=correct-horse";
    assert.strictEqual((await http(`${base}/auth/register`, { method: "POST", body: form })).status, 302);
    const login = await http(`${base}/auth/login`, { method: "POST", body: form });
    assert.strictEqual(login.status, 302, login.text);
    const session = /session=([^;]+)/.exec(login.headers.getSetCookie().join("\n"))?.[1] ?? "";
    assert.ok(signedWith(session, SECRET), `the session is not signed with the stack's secret: ${session}`);
    assert.ok(!signedWith(session, "dev"));
    cookie = `session=${session}`;
    const post = await http(`${base}/create`, { method: "POST", body: "title=kept&body=across+deploys", cookie });
    assert.strictEqual(post.status, 302, post.text);
    const index = await http(`${base}/`, { cookie });
    assert.match(index.text, /<span>ada<\/span>/);
    assert.match(index.text, /<h1>kept<\/h1>/);
  });

  it("friction 5: the package's static folder is served by nginx, with cache headers", async () => {
    const css = await http(`${base}/static/style.css`);
    assert.strictEqual(css.status, 200);
    assert.strictEqual(css.text, fs.readFileSync(path.join(FIXTURE, "flaskr/static/style.css"), "utf8"));
    assert.match(css.headers.get("cache-control") ?? "", /max-age=3600/, "nginx (Flask would say no-cache)");
    assert.strictEqual((await http(`${base}/static/.hidden`)).status, 404);
  });

  it("friction 8: a number set with --path reaches the app as text", () => {
    assert.match(fs.readFileSync(stack.configFile, "utf8"), /WORKERS: 4\n/);
    assert.match(server.ssh("cat /etc/fdeploy/flaskapp/env"), /^WORKERS="4"$/m);
  });

  it("a second up with nothing changed runs no remote command — also with local databases, logs and instance files (issue 26)", () => {
    // what a developer's folder holds after running the app locally (the tutorial's init-db, a log
    // its .gitignore lists): never shipped, and the instance folder stays shared
    fs.mkdirSync(path.join(app.dir, "instance"), { recursive: true });
    fs.writeFileSync(path.join(app.dir, "instance/flaskr.sqlite"), "SQLite format 3\0");
    fs.writeFileSync(path.join(app.dir, "app.db"), "SQLite format 3\0");
    fs.writeFileSync(path.join(app.dir, ".gitignore"), "*.log\n");
    fs.writeFileSync(path.join(app.dir, "debug.log"), "local run\n");
    try {
      const r = stack.up();
      assert.strictEqual(r.status, 0, r.output);
      assert.deepStrictEqual(changed(r.output), []);
      assert.doesNotMatch(r.output, /(created|updated|replaced)/);
      assert.match(r.output, /left out by rule: 4 \(\.gitignore, app\.db, debug\.log, instance\/\) — rules: built-in \+ \.gitignore/);
    } finally {
      for (const f of ["instance", "app.db", ".gitignore", "debug.log"]) fs.rmSync(path.join(app.dir, f), { recursive: true, force: true });
    }
  });

  it("a second deploy (new code) keeps the users, posts and sessions; the release command does not wipe them", async () => {
    const before = live();
    fs.appendFileSync(path.join(app.dir, "flaskr/templates/base.html"), "<!-- v2 -->\n");
    const r = await timedUp(stack);
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      code-change deploy: ${r.seconds.toFixed(1)} s`);
    assert.notStrictEqual(live(), before);
    const index = await http(`${base}/`, { cookie });
    assert.match(index.text, /<!-- v2 -->/);
    assert.match(index.text, /<span>ada<\/span>/, "the session survives (same secret)");
    assert.match(index.text, /<h1>kept<\/h1>/, "the post survives");
  });

  it(`an older Gunicorn pin (${OLD_GUNICORN}, before --no-control-socket) deploys and serves; the newest again converges`, async () => {
    const req = path.join(app.dir, "requirements.txt");
    const pins = fs.readFileSync(req, "utf8");
    fs.writeFileSync(req, `flask\ngunicorn==${OLD_GUNICORN}\n`);
    try {
      const r = await timedUp(stack);
      assert.strictEqual(r.status, 0, r.output);
      assert.strictEqual((await http(`${base}/`)).status, 200);
      assert.match(server.ssh("/srv/flaskapp/current/.venv/bin/gunicorn --version"), new RegExp(OLD_GUNICORN.replace(/\./g, "\\.")));
      assert.match(server.ssh("cat /srv/flaskapp/slots/main.env"), /^GUNICORN_FLAGS=$/m, "the slot runs it without the option it lacks");
    } finally {
      fs.writeFileSync(req, pins);
    }
    const back = await timedUp(stack);
    assert.strictEqual(back.status, 0, back.output);
    assert.match(server.ssh("cat /srv/flaskapp/slots/main.env"), /^GUNICORN_FLAGS=--no-control-socket$/m);
    assert.strictEqual((await http(`${base}/`)).status, 200);
  });

  it("friction 1: a factory written without () fails at once, saying to write create_app(); the live release keeps serving", async () => {
    const p = stack.run(["preview"]);
    assert.strictEqual(p.status, 0, p.output);
    stack.setConfig("appModule", "flaskr:create_app(os.environ)");
    const bad = stack.run(["preview"]);
    assert.notStrictEqual(bad.status, 0);
    assert.match(bad.output, /flask-deploy:appModule: not a literal/);
    stack.setConfig("appModule", "flaskr:create_app");
    const before = live();
    for (const strategy of ["restart", "blue-green"]) { // blue-green: beside a live slot
      stack.setConfig("strategy", strategy);
      const r = await timedUp(stack);
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, /flaskr:create_app is a function that is not a WSGI app .*set appModule to flaskr:create_app\(\)/);
      console.log(`      ${strategy}: failed after ${r.seconds.toFixed(1)} s`);
      assert.ok(r.seconds < TIMEOUT / 2, `${strategy}: took ${r.seconds} s`);
      assert.strictEqual(live(), before);
      assert.match((await http(`${base}/`, { cookie })).text, /<span>ada<\/span>/);
    }
    stack.setConfig("strategy", "restart");
    stack.setConfig("appModule", "flaskr:create_app()");
    const back = stack.up();
    assert.strictEqual(back.status, 0, back.output);
  });

  it("friction 4: a health path the app lacks (404) fails at once, naming healthPath", async () => {
    stack.setConfig("healthPath", "/health");
    const r = await timedUp(stack);
    assert.notStrictEqual(r.status, 0, r.output);
    assert.match(r.output, /GET \/health with HTTP 404: the health path \(flask-deploy:healthPath/);
    console.log(`      failed after ${r.seconds.toFixed(1)} s`);
    assert.ok(r.seconds < TIMEOUT / 2, `took ${r.seconds} s`);
    assert.strictEqual((await http(`${base}/`)).status, 200);
    stack.setConfig("healthPath", "/");
    const back = stack.up();
    assert.strictEqual(back.status, 0, back.output);
  });

  it("friction 6: a failing release command stops the deploy before the switch and names the backup", async () => {
    const before = live();
    stack.setConfig("releaseCommands[1]", "flask --app flaskr no-such-command");
    fs.appendFileSync(path.join(app.dir, "flaskr/templates/base.html"), "<!-- v3 -->\n");
    const r = await timedUp(stack);
    assert.notStrictEqual(r.status, 0, r.output);
    const m = /release command 2 \('flask --app flaskr no-such-command'\) failed \(exit \d+\).*the live release keeps serving[\s\S]*backup taken before the release commands is in (\S+):/.exec(r.output);
    assert.ok(m, r.output.slice(-3000));
    assert.match(server.ssh(`ls ${m![1]}/instance`), /flaskr\.sqlite/);
    assert.strictEqual(live(), before);
    assert.doesNotMatch((await http(`${base}/`)).text, /v3/);
    stack.mustRun(["config", "rm", "--path", "releaseCommands[1]"]);
    const back = stack.up();
    assert.strictEqual(back.status, 0, back.output);
    assert.match((await http(`${base}/`, { cookie })).text, /<!-- v3 -->/);
    assert.match((await http(`${base}/`, { cookie })).text, /<h1>kept<\/h1>/);
  });

  it("rollback and --forward work without SQL migrations: shared paths relinked, release commands not re-run, data kept", async () => {
    const newest = live();
    const commandsBefore = server.ssh("ls /srv/flaskapp/shared/backups | grep -c pre-release || true").trim();
    const rb = stack.rollback();
    assert.strictEqual(rb.status, 0, rb.output);
    assert.notStrictEqual(live(), newest);
    assert.strictEqual(server.ssh(`readlink /srv/flaskapp/releases/${live()}/instance`).trim(), "/srv/flaskapp/shared/instance");
    let index = await http(`${base}/`, { cookie });
    assert.doesNotMatch(index.text, /<!-- v3 -->/);
    assert.match(index.text, /<span>ada<\/span>[\s\S]*<h1>kept<\/h1>/);
    assert.strictEqual(server.ssh("ls /srv/flaskapp/shared/backups | grep -c pre-release || true").trim(), commandsBefore, "release commands ran on a rollback");
    const fwd = stack.rollback("--forward");
    assert.strictEqual(fwd.status, 0, fwd.output);
    assert.strictEqual(live(), newest);
    index = await http(`${base}/`, { cookie });
    assert.match(index.text, /<!-- v3 -->/);
    assert.match(index.text, /<span>ada<\/span>[\s\S]*<h1>kept<\/h1>/);
  });

  it("root never follows a path the app can write in shared/: planted links are replaced as the app user, or refused", async () => {
    const passwd = server.ssh("sha256sum /etc/passwd");
    server.ssh("runuser -u flaskapp -- ln -sfn /etc/passwd /srv/flaskapp/shared/instance/config.py");
    stack.setConfig("sharedFiles[0].content", "SECRET_KEY = '${SECRET_KEY}'\nWORKERS = ${WORKERS}\n");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.ssh("readlink /srv/flaskapp/shared/instance/config.py").trim(), "/srv/flaskapp/files/instance/config.py");
    assert.match(server.ssh("cat /srv/flaskapp/files/instance/config.py"), /^WORKERS = 4$/m);
    assert.strictEqual(server.ssh("sha256sum /etc/passwd"), passwd);
    // the app swaps its whole instance folder for a link to a root-only folder: the deploy stops
    server.ssh("runuser -u flaskapp -- sh -c 'mv /srv/flaskapp/shared/instance /srv/flaskapp/shared/instance.moved && ln -s /etc/fdeploy/flaskapp /srv/flaskapp/shared/instance'");
    try {
      stack.setConfig("sharedFiles[0].content", "SECRET_KEY = '${SECRET_KEY}'\n");
      const planted = stack.up();
      assert.notStrictEqual(planted.status, 0, planted.output);
      assert.match(planted.output, /could not link shared\/instance\/config\.py as flaskapp/);
      assert.strictEqual(server.ssh("ls /etc/fdeploy/flaskapp | grep -c config || true").trim(), "0");
    } finally {
      server.ssh("rm /srv/flaskapp/shared/instance && mv /srv/flaskapp/shared/instance.moved /srv/flaskapp/shared/instance");
    }
    const back = stack.up();
    assert.strictEqual(back.status, 0, back.output);
    assert.match((await http(`${base}/`, { cookie })).text, /<span>ada<\/span>/);
  });

  it("issue 26: a Flask-SQLAlchemy + Flask-Migrate app deploys first try with only stack config", async () => {
    const sq = copyFixture("anyapp-sqla", SQLA_FIXTURE);
    // what the developer's folder holds after a local run: git-ignored, never shipped; logs/ can still be shared
    fs.writeFileSync(path.join(sq.dir, "app.db"), "SQLite format 3\0");
    fs.mkdirSync(path.join(sq.dir, "logs"));
    fs.writeFileSync(path.join(sq.dir, "logs/app.log"), "a local run\n");
    const s = new TestStack("anyapp-sqla");
    try {
      s.target(server, {
        appName: "sqla", serverName: "sqla.test", appDir: sq.rel, appModule: "app:create_app()", "sharedDirs[0]": "logs",
        "releaseCommands[0]": "flask --app app db upgrade", healthTimeoutSeconds: String(TIMEOUT),
      });
      s.setConfig("env.DATABASE_URL", "sqlite:///${DATABASE_PATH}");
      s.setConfig("secrets.SECRET_KEY", SECRET, { secret: true });
      const r = await timedUp(s);
      assert.strictEqual(r.status, 0, r.output);
      console.log(`      first deploy: ${r.seconds.toFixed(1)} s`);
      assert.match(r.output, /left out by rule: 3 \(\.gitignore, app\.db, logs\/\)/);
      assert.doesNotMatch(r.output, /no SECRET_KEY|migrations-apply/, "Alembic's migrations/ is not taken for SQL migrations");
      const curl = (p: string, extra = "") => server.ssh(`curl -s ${extra} -H 'Host: sqla.test' http://127.0.0.1${p}`);
      assert.match(curl("/notes", "-d body=first"), /"first"/);
      const tables = server.ssh("sqlite3 /srv/sqla/shared/db/app.sqlite3 .tables");
      assert.match(tables, /alembic_version\s+note/, "flask db upgrade ran on DATABASE_URL = sqlite:///${DATABASE_PATH}");
      assert.doesNotMatch(tables, /schema_migrations|notes/, "the sample app's SQL migrations were applied");
      assert.match(curl("/static/style.css", "-i"), /Cache-Control: max-age=3600[\s\S]*font-family/i, "nginx serves app/static");
      assert.match(server.ssh("cat /srv/sqla/shared/logs/app.log"), /note added/);
      assert.match(server.ssh("/srv/sqla/current/.venv/bin/gunicorn --version"), /21\.2\.0/);
      assert.strictEqual(server.trySsh("test -e /srv/sqla/current/app.db").status, 1);
      const again = s.up();
      assert.strictEqual(again.status, 0, again.output);
      assert.deepStrictEqual(changed(again.output), []);
    } finally {
      s.remove();
    }
  });

  it("friction 3: a first deploy of an app that does not load fails in the preflight, well before the health timeout", async () => {
    const broken = copyFixture("anyapp-broken");
    fs.writeFileSync(path.join(broken.dir, "flaskr/__init__.py"),
      "import flaskr_missing_dependency  # noqa\n" + fs.readFileSync(path.join(broken.dir, "flaskr/__init__.py"), "utf8"));
    const other = new TestStack("anyapp-broken");
    try {
      other.target(server, {
        appName: "broken", serverName: "broken.test", appDir: broken.rel, appModule: "flaskr:create_app()",
        migrationsDir: "none", healthPath: "/", healthTimeoutSeconds: String(TIMEOUT),
      });
      const r = await timedUp(other);
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, /does not load \(flask-deploy:appModule flaskr:create_app\(\)\): ModuleNotFoundError: No module named 'flaskr_missing_dependency'\. Check requirements\.txt .* Nothing was live yet\./);
      assert.doesNotMatch(r.output, /live release is untouched/, "a first deploy speaks of no live release");
      assert.match(r.output, /no SECRET_KEY: .*pulumi config set --stack anyapp-broken --secret --path secrets\.SECRET_KEY/, "no key anywhere: the preview warns");
      console.log(`      failed after ${r.seconds.toFixed(1)} s`);
    assert.ok(r.seconds < TIMEOUT / 2, `took ${r.seconds} s`);
      assert.notStrictEqual(server.trySsh("systemctl is-active --quiet fdeploy-broken@main.service").status, 0, "no slot was started");
      assert.strictEqual((await http(`${base}/`)).status, 200, "the other app keeps serving");
    } finally {
      other.remove();
    }
  });
});
