// PostgreSQL as the database (issue 31; README "PostgreSQL"): one app server (pgapp, .205) and one
// database server (pgdb, .206, booted from the image with Debian's postgresql; the deploy configures it).
// before() deploys the sample app and its migrations (their PostgreSQL pairs) on it; the cases check what a user
// relies on: notes kept in the app's own PostgreSQL database over TLS with the server's certificate pinned (a swapped
// certificate refused by the app and the migration runner), a second up that changes nothing, a second app on the same database
// server that cannot reach the first one's data, fdeploy status and refresh reporting the database server,
// a bad `database` value refused at preview.
// Time: 6 min 7 s here (2026-12-07, load average 13), servers booted: four deploys of the sample app (one failing),
// the database server's first configuration, a preview --refresh.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { addWheels, startServer, TestServer } from "../servers";
import { spawnSync } from "child_process";
import * as http from "http";
import { copyApp, copyMigrations } from "./app-copy";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";

const PASSWORD_A = "pga-role-password-0123456789";
const PASSWORD_B = "pgb-role-password-9876543210";
describe("postgres: the app's database on a PostgreSQL server the stack manages", function () {
  this.timeout(900000);
  let app: TestServer, db: TestServer;
  const stacks: TestStack[] = [];

  const migrations: Record<string, string> = {};
  /** A stack deploying working copies of the sample app and its migrations (their PostgreSQL pairs) as APPNAME
   * (site NAME.test) with its database on pgdb. */
  function pgStack(appName: string, password: string): TestStack {
    const copy = copyApp(appName);
    migrations[appName] = copyMigrations(appName).dir;
    const stack = new TestStack(appName);
    stacks.push(stack);
    stack.target(app, { appDir: copy.rel, appName, serverName: `${appName}.test`, migrationsDir: path.relative(PROJECT_DIR, migrations[appName]) });
    stack.setConfig("secrets.SECRET_KEY", `${appName}-test-secret`, { secret: true });
    for (const [k, v] of Object.entries({ engine: "postgres", "host.host": db.host, "host.privateKeyPath": db.keyPath, "host.hostKey": db.hostKey })) {
      stack.setConfig(`database.${k}`, v);
    }
    stack.setConfig("databasePassword", password, { secret: true });
    return stack;
  }
  /** One request to APPNAME's site (fetch does not send a Host header of its own choosing); BODY: a POST of JSON. */
  const site = (appName: string, p: string, body?: unknown) => new Promise<{ status: number; text: string; json(): any }>((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({
      host: app.host, port: 80, path: p, method: data ? "POST" : "GET", timeout: 10000,
      headers: { host: `${appName}.test`, connection: "close", ...(data ? { "content-type": "application/json" } : {}) },
    }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, json: () => JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(data);
  });
  /** SQL as the postgres superuser on the database server (one value a line). */
  const superSql = (database: string, sql: string) => db.ssh(`runuser -u postgres -- psql -X -At -d ${database}`, sql).trim();
  /** Python in app A's live release (its venv: psycopg), on the app server. */
  const python = (code: string) => app.trySsh("/srv/pga/current/.venv/bin/python -", code);

  before(() => {
    addWheels(path.join(PROJECT_DIR, "app", "requirements.txt"));
    db = startServer("pgdb", 206, { image: "postgres" });
    app = startServer("pgapp", 205);
    const r = pgStack("pga", PASSWORD_A).up();
    assert.strictEqual(r.status, 0, r.output);
  });
  after(() => { for (const s of stacks) s.remove(); });

  it("serves the sample app, migrated with its PostgreSQL migrations; its notes are kept in its own database on the PostgreSQL server", async () => {
    const health = await site("pga", "/health");
    assert.strictEqual(health.status, 200, health.text);
    assert.strictEqual(health.json().schema_version, 2);
    // the runner applied each version's .postgres pair (their checksums recorded), not the SQLite files
    const sha = (f: string) => crypto.createHash("sha256").update(fs.readFileSync(path.join(migrations.pga, f))).digest("hex");
    assert.strictEqual(superSql("pga", "SELECT version || ' ' || checksum FROM schema_migrations ORDER BY version"),
      `1 ${sha("0001_create_notes.postgres.up.sql")}\n2 ${sha("0002_add_notes_created_at.postgres.up.sql")}`);
    assert.strictEqual(superSql("pga", "SELECT data_type FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'id'"), "bigint");
    const created = await site("pga", "/api/notes", { body: "kept in postgres" });
    assert.strictEqual(created.status, 201, created.text);
    assert.match(created.json().created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.strictEqual(superSql("pga", "SELECT body FROM notes"), "kept in postgres");
    assert.strictEqual(superSql("pga", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pga'"), "pga");
    // the URL (with the password) only in the root-only environment file, with the server's certificate pinned:
    // verify-full against the CA file the deploy wrote (root-owned, readable: a certificate is public)
    assert.strictEqual(app.ssh("stat -c '%U %a' /etc/fdeploy/pga/env").trim(), "root 600");
    assert.match(app.ssh("cat /etc/fdeploy/pga/env"), new RegExp(`^DATABASE_URL="postgresql://pga:${PASSWORD_A}@${db.host.replace(/\./g, "\\.")}:5432/pga` +
      "\\?sslmode=verify-full&sslrootcert=/etc/fdeploy/pga\\.pg-root\\.crt\"$", "m"));
    assert.strictEqual(app.ssh("stat -c '%U %a' /etc/fdeploy/pga.pg-root.crt").trim(), "root 644");
    assert.strictEqual(app.ssh("cat /etc/fdeploy/pga.pg-root.crt"), db.ssh("cat /etc/fdeploy/postgres/server.crt"));
    assert.match(db.ssh("openssl x509 -in /etc/fdeploy/postgres/server.crt -noout -ext subjectAltName"), new RegExp(`IP Address:${db.host.replace(/\./g, "\\.")}`));
    // the password: never in the stack's state in plaintext, nor in the database server's logs or settings
    assert.ok(!stacks[0].stateText().includes(PASSWORD_A), "the password in plaintext in the state");
    assert.strictEqual(db.trySsh(`grep -rl -- '${PASSWORD_A}' /var/log/postgresql /etc/postgresql /etc/fdeploy`).stdout, "");
    assert.match(superSql("postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'pga'"), /^SCRAM-SHA-256\$4096:/);
  });

  it("connects over TLS only: the app's session is encrypted, a plaintext connection is refused", () => {
    const url = app.ssh("sed -n 's/^DATABASE_URL=\"\\(.*\\)\"$/\\1/p' /etc/fdeploy/pga/env").trim();
    const r = python(`import psycopg\nc = psycopg.connect(${JSON.stringify(url)})\nprint(c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0])\n`);
    assert.strictEqual(r.stdout.trim(), "True", r.stderr);
    const plain = python(`import psycopg\npsycopg.connect(${JSON.stringify(url.replace(/sslmode=verify-full&sslrootcert=[^&]*/, "sslmode=disable"))})\n`);
    assert.notStrictEqual(plain.status, 0);
    assert.match(plain.stderr, /no pg_hba\.conf entry for host "10\.213\.0\.205", user "pga", database "pga", no encryption/);
  });

  it("a second up with the same inputs changes nothing", () => {
    const r = stacks[0].up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
  });

  it("fdeploy status and a refresh report the database server: version, running, the app's database and its size", () => {
    const fdeploy = (words: string[]) => spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...words, "--stack", stacks[0].name,
      "--config-file", stacks[0].configFile], { cwd: PROJECT_DIR, env: stacks[0].env, encoding: "utf8" });
    let st = fdeploy(["status"]);
    assert.strictEqual(st.status, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`^database      postgres 15 on ${db.host.replace(/\./g, "\\.")}, running; database pga \\d+(\\.\\d+)? [KM]B$`, "m"));
    const json = JSON.parse(fdeploy(["status", "--json"]).stdout).database;
    assert.deepStrictEqual({ ...json, sizeBytes: json.sizeBytes > 1e6 }, {
      engine: "postgres", host: db.host, name: "pga", reachable: true, installed: true, version: "15", running: true, exists: true, sizeBytes: true,
    });
    // the server stopped: status says so, a refresh shows it as drift
    db.ssh("systemctl stop postgresql@15-main");
    try {
      st = fdeploy(["status"]);
      assert.match(st.stdout, /^database      postgres 15 on \S+ NOT RUNNING/m);
      const r = stacks[0].run(["preview", "--refresh"]);
      assert.match(r.output, /database drift on pga@10\.213\.0\.206\/postgres: running \(false\)/);
    } finally {
      db.ssh("systemctl start postgresql@15-main");
    }
  });

  it("a second app on the same database server gets its own role and database; neither reaches the other's", async () => {
    const b = pgStack("pgb", PASSWORD_B);
    const r = b.up();
    assert.strictEqual(r.status, 0, r.output);
    const created = await site("pgb", "/api/notes", { body: "b's note" });
    assert.strictEqual(created.status, 201, created.text);
    assert.strictEqual(superSql("pgb", "SELECT body FROM notes"), "b's note");
    // app B's role and password, from the app server (where B's code runs), against A's database: refused
    const bUrl = `postgresql://pgb:${PASSWORD_B}@${db.host}:5432/pga?sslmode=require`;
    const attack = python(`import psycopg\npsycopg.connect(${JSON.stringify(bUrl)}).execute("SELECT body FROM notes")\n`);
    assert.notStrictEqual(attack.status, 0);
    assert.match(attack.stderr, /no pg_hba\.conf entry for host "10\.213\.0\.205", user "pgb", database "pga"/);
    // and below pg_hba: no role but the owner may connect to an app's database (CONNECT revoked from PUBLIC)
    assert.strictEqual(superSql("postgres", "SELECT has_database_privilege('pgb', 'pga', 'CONNECT'), has_database_privilege('pga', 'pgb', 'CONNECT')"), "f|f");
    // A keeps serving its own notes
    const notes = await site("pga", "/api/notes");
    assert.deepStrictEqual(notes.json().map((n: any) => n.body), ["kept in postgres"]);
  });

  it("refuses a bad database value at preview, naming the key and the expected form", () => {
    const b = stacks[1];
    b.setConfig("database.engine", "mysql");
    const r = b.preview();
    b.setConfig("database.engine", "postgres");
    assert.notStrictEqual(r.status, 0);
    assert.match(r.output, /flask-deploy:database\.engine: expected postgres \(the only engine the stack manages\)/);
  });
  it("pins the database server's certificate: a swapped one for the same address is refused by the app and the migration runner", async () => {
    const dir = "/etc/fdeploy/postgres";
    const reload = "runuser -u postgres -- psql -X -qAt -c 'SELECT pg_reload_conf()' >/dev/null";
    // an impostor on the database server's address: a certificate for the same name, with a key of its own
    db.ssh(`cd ${dir} && cp -p server.crt real.crt && cp -p server.key real.key && openssl req -x509 -nodes -newkey ec ` +
      `-pkeyopt ec_paramgen_curve:prime256v1 -days 1 -subj /CN=${db.host} -addext subjectAltName=IP:${db.host} -keyout fake.key ` +
      `-out fake.crt 2>/dev/null && cp fake.crt server.crt && cp fake.key server.key && ${reload}`);
    try {
      const url = app.ssh("sed -n 's/^DATABASE_URL=\"\\(.*\\)\"$/\\1/p' /etc/fdeploy/pga/env").trim();
      // unpinned (sslmode=require, as before) the impostor is accepted: what the pin prevents
      const loose = python(`import psycopg\nprint(psycopg.connect(${JSON.stringify(url.replace(/sslmode=verify-full&sslrootcert=[^&]*/, "sslmode=require"))}).execute("SELECT 1").fetchone()[0])\n`);
      assert.strictEqual(loose.stdout.trim(), "1", loose.stderr);
      const health = await site("pga", "/health");
      assert.strictEqual(health.status, 503, health.text);
      assert.match(health.json().error, /certificate verify failed/);
      // the migration runner (psql, as root, the same URL) refuses it too: the deploy fails before its migration
      fs.writeFileSync(path.join(migrations.pga, "0003_add_notes_tag.up.sql"), "ALTER TABLE notes ADD COLUMN tag text;\n");
      fs.writeFileSync(path.join(migrations.pga, "0003_add_notes_tag.down.sql"), "ALTER TABLE notes DROP COLUMN tag;\n");
      const r = stacks[0].up();
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, /certificate verify failed/);
      assert.strictEqual(superSql("pga", "SELECT max(version) FROM schema_migrations"), "2");
    } finally {
      db.ssh(`cd ${dir} && cp real.crt server.crt && cp real.key server.key && rm -f real.* fake.* && ${reload}`);
    }
    // the real server again: the migration applies (a plain pair: the same SQL on both engines), the notes are kept
    const r = stacks[0].up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await site("pga", "/health")).json().schema_version, 3);
    assert.deepStrictEqual((await site("pga", "/api/notes")).json().map((n: any) => n.body), ["kept in postgres"]);
  });
});
