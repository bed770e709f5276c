// Issue "Migrations": every deploy runs pending migrations after the release is installed and
// before the switch, with a backup first; a failing migration stops the deploy with the old
// release serving and the data as it was.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { deployFresh } from "./fixture";
import { TestStack } from "./pulumi";

describe("migrations: applied by deploys, failures stop before the switch", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let migrations: ReturnType<typeof copyMigrations>;
  let base: string;
  const addMigration = (name: string, up: string, down: string) => {
    fs.writeFileSync(path.join(migrations.dir, `${name}.up.sql`), up);
    fs.writeFileSync(path.join(migrations.dir, `${name}.down.sql`), down);
  };
  const backups = () => server.ssh("ls /srv/flaskapp/shared/backups | wc -l").trim();

  before(() => {
    ({ server, stack, app, migrations, base } = deployFresh("migr", 51, { healthTimeoutSeconds: "10" }));
  });
  after(() => stack?.remove());

  it("a fresh database gets every migration; no backup of an empty database", async () => {
    assert.strictEqual(stack.outputs().schemaVersion, 2);
    assert.strictEqual((await get(`${base}/health`)).json().schema_version, 2);
    assert.strictEqual(backups(), "0");
  });

  it("a deploy that adds a migration: preview lists it, up applies it after a backup, the app uses the new column", async () => {
    await get(`${base}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "before 0003" }) });
    addMigration("0003_add_notes_pinned", "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\nUPDATE notes SET pinned = 1;\n",
      "ALTER TABLE notes DROP COLUMN pinned;\n");
    app.edit("wsgi.py", (s) => s + `
from notes import get_db


@app.get("/api/pinned")
def pinned():
    return {"pinned": [r[0] for r in get_db().execute("SELECT body FROM notes WHERE pinned = 1")]}
`);
    const p = stack.run(["preview", "--diff"]);
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /0003_add_notes_pinned/);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(stack.outputs().schemaVersion, 3);
    assert.strictEqual(backups(), "1", "one online backup taken before migrating");
    assert.deepStrictEqual((await get(`${base}/api/pinned`)).json().pinned, ["before 0003"]);
    const rows = server.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT version, name FROM schema_migrations ORDER BY version'");
    assert.match(rows, /3\|add_notes_pinned/);
  });

  // what is in force for the live slot: its units and environment file (issue 24, defect 1)
  const inForce = () => server.ssh("sha256sum /etc/systemd/system/fdeploy-flaskapp@.service /etc/systemd/system/fdeploy-flaskapp@.socket /etc/fdeploy/flaskapp/env");

  it("a failing migration fails the deploy; the previous release keeps serving with its data and its settings", async () => {
    const live = stack.outputs().releaseId;
    const notesBefore = (await get(`${base}/api/notes`)).text;
    const settingsBefore = inForce();
    addMigration("0004_broken", "ALTER TABLE notes ADD COLUMN extra TEXT;\nINSERT INTO no_such_table VALUES (1);\n", "SELECT 1;\n");
    app.edit("wsgi.py", (s) => s + "\n# release that needs 0004\n");
    fs.writeFileSync(path.join(app.dir, "wsgi_v2.py"), "from wsgi import app  # noqa: F401\n");   // only the new release has it
    // new settings in the same deploy: a module the old code lacks, another worker count, another environment
    stack.setConfig("appModule", "wsgi_v2:app");
    stack.setConfig("workers", "3");
    stack.setConfig("env.APP_GREETING", "greeting of the failed deploy");
    const r = stack.up();
    assert.notStrictEqual(r.status, 0, "the deploy must fail");
    assert.match(r.output, /0004_broken/);
    assert.match(r.output, /no such table: no_such_table/);
    assert.doesNotMatch(r.output, /activation-switch\s+(updated|created)/, "no switch after a failed migration");
    const health = (await get(`${base}/health`)).json();
    assert.strictEqual(health.release, live, "the old release still serves");
    assert.strictEqual(health.schema_version, 3, "the failed migration was rolled back");
    assert.strictEqual((await get(`${base}/api/notes`)).text, notesBefore, "data intact");
    const cols = server.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'PRAGMA table_info(notes)'");
    assert.doesNotMatch(cols, /extra/, "the first statement of the failed migration was rolled back too");
    // the staged settings never went in force: a crash restart (or a reboot) of the live slot starts
    // the live release with the settings it ran with, not with a module its code lacks
    assert.strictEqual(inForce(), settingsBefore, "the failed deploy changed the unit or environment in force");
    server.ssh("kill -KILL $(systemctl show -p MainPID --value fdeploy-flaskapp@main.service)");   // a crash: systemd restarts it
    let after: { release?: string } = {};
    for (let i = 0; i < 40 && after.release !== live; i++) {
      await new Promise((res) => setTimeout(res, 500));
      try { after = (await get(`${base}/health`)).json(); } catch { /* restarting */ }
    }
    assert.strictEqual(after.release, live, "the live release serves again after a crash restart");
  });

  it("after fixing the migration, the next up converges, with the new settings in force", async () => {
    addMigration("0004_broken", "ALTER TABLE notes ADD COLUMN extra TEXT;\n", "ALTER TABLE notes DROP COLUMN extra;\n");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(server.ssh("grep ^ExecStart= /etc/systemd/system/fdeploy-flaskapp@.service"), /--workers 3 .* wsgi_v2:app$/m);
    assert.match(server.ssh("cat /etc/fdeploy/flaskapp/env"), /APP_GREETING="greeting of the failed deploy"/);
    assert.strictEqual(stack.outputs().schemaVersion, 4);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.match(again.output, /unchanged/);
    assert.doesNotMatch(again.output, /(created|updated|replaced)/, "no migration command without a migration change");
  });

  it("a release that does not load fails before its migrations and release commands touch the database", async () => {
    const schema = () => server.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT max(version) FROM schema_migrations'").trim();
    const marker = "/srv/flaskapp/shared/db/release-command-ran";
    addMigration("0005_never_applied", "CREATE TABLE never_applied (x);\n", "DROP TABLE never_applied;\n");
    stack.setConfig("releaseCommands[0]", 'touch "$(dirname "$DATABASE_PATH")/release-command-ran"');
    app.edit("wsgi.py", (s) => "import fdeploy_not_installed  # does not load\n" + s);
    try {
      const r = stack.up();
      assert.notStrictEqual(r.status, 0, "the deploy must fail");
      assert.match(r.output, /does not load \(flask-deploy:appModule wsgi_v2:app\): ModuleNotFoundError: No module named 'fdeploy_not_installed'/);
      assert.strictEqual(schema(), "4", "migration 0005 ran for a release that does not load");
      assert.notStrictEqual(server.trySsh(`test -e ${marker}`).status, 0, "a release command ran for a release that does not load");
      assert.doesNotMatch(r.output, /activation-switch\s+(updated|created)/);
    } finally {
      app.edit("wsgi.py", (s) => s.replace("import fdeploy_not_installed  # does not load\n", ""));
    }
    const fixed = stack.up();
    assert.strictEqual(fixed.status, 0, fixed.output);
    assert.strictEqual(schema(), "5");
    assert.strictEqual(server.trySsh(`test -e ${marker}`).status, 0, "the release command ran once the release loads");
  });

  // issue 29: the pre-change backups within a disk budget (keepBackupsBytes), with MB-sized copies
  const DB = "/srv/flaskapp/shared/db/app.sqlite3";
  const schemaOf = () => server.ssh(`sqlite3 ${DB} 'SELECT max(version) FROM schema_migrations'`).trim();
  const stampOf = (n: string) => /(\d{8}T\d{6})\d*Z/.exec(n)![1] + n;
  const kept = () => server.ssh("ls -1 /srv/flaskapp/shared/backups").split("\n").filter((n) => /^(app|pre-release)-/.test(n))
    .sort((a, b) => stampOf(a).localeCompare(stampOf(b)));   // oldest first, both kinds
  const removed = (out: string) => [...out.matchAll(/backup: removed (\S+) \(oldest first/g)].map((m) => m[1]);

  it("a deploy whose backup would not fit keepBackupsBytes is refused with the numbers; release, schema, data and backups unchanged", async () => {
    // ~8 MB of ballast, written as the database's owner
    server.ssh(`runuser -u "$(stat -c %U ${DB})" -- sqlite3 ${DB} "CREATE TABLE ballast (b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 80) INSERT INTO ballast SELECT randomblob(100000) FROM c;"`);
    const live = stack.outputs().releaseId;
    const before = { notes: (await get(`${base}/api/notes`)).text, schema: schemaOf(), backups: kept() };
    addMigration("0006_notes_tag", "ALTER TABLE notes ADD COLUMN tag TEXT;\n", "ALTER TABLE notes DROP COLUMN tag;\n");
    app.edit("wsgi.py", (s) => s + "\n# the release with 0006\n");
    stack.setConfig("keepBackupsBytes", "5MB");
    const r = stack.up();
    assert.notStrictEqual(r.status, 0, "the deploy must be refused");
    assert.match(r.output, /the backup of app\.sqlite3 before the schema change needs 8\.\d MB, which does not fit: the budget for kept backups is 5\.0 MB \(flask-deploy:keepBackupsBytes\), the disk has \d+\.\d [MGT]B free \(\d+\.\d [MGT]B if every kept backup went\)/);
    assert.match(r.output, /the schema, the data and the live release are unchanged: raise flask-deploy:keepBackupsBytes, free disk space on the server, or lower flask-deploy:keepBackups/);
    assert.doesNotMatch(r.output, /activation-switch\s+(updated|created)/);
    assert.strictEqual((await get(`${base}/health`)).json().release, live, "the live release still serves");
    assert.strictEqual(schemaOf(), before.schema, "the schema did not change");
    assert.strictEqual((await get(`${base}/api/notes`)).text, before.notes, "data intact");
    assert.strictEqual(server.ssh(`sqlite3 ${DB} 'SELECT count(*) FROM ballast'`).trim(), "80");
    assert.deepStrictEqual(kept(), before.backups, "no backup was taken or removed");
  });

  it("within keepBackupsBytes: the deploy says how big the backup is and how long it took; the oldest kept backups go first", () => {
    const old = kept();
    stack.setConfig("keepBackupsBytes", "20MB");   // two copies of the ~8 MB database and the small ones
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(schemaOf(), "6");
    assert.match(r.output, /backup: app\.sqlite3, 8\.\d MB in \d+\.\d s -> \/srv\/flaskapp\/shared\/backups\/app-\d{8}T\d{12}Z-v5\.sqlite3/);
    assert.match(r.output, /backup before the release commands: 1 database\(s\), 8\.\d MB in \d+\.\d s, in \/srv\/flaskapp\/shared\/backups\/pre-release-/);
    assert.deepStrictEqual(removed(r.output), [], "within the budget nothing goes");
    const mid = kept();
    assert.strictEqual(mid.length, old.length + 2);
    // the next migration: room is made oldest first, across both kinds, until each copy fits the budget
    addMigration("0007_notes_rank", "ALTER TABLE notes ADD COLUMN rank INTEGER;\n", "ALTER TABLE notes DROP COLUMN rank;\n");
    app.edit("wsgi.py", (s) => s + "\n# the release with 0007\n");
    const next = stack.up();
    assert.strictEqual(next.status, 0, next.output);
    assert.strictEqual(schemaOf(), "7");
    assert.deepStrictEqual(removed(next.output), mid, "every earlier backup went, oldest first");
    assert.strictEqual(kept().length, 2, "the new pre-migration and pre-release backups stay");
    const used = Number(server.ssh("du -sb /srv/flaskapp/shared/backups | cut -f1"));
    assert.ok(used <= 20e6, `kept backups use ${used} bytes, over the 20MB budget`);
  });
});
