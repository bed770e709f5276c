// `database` under Pulumi mocks: three FlaskApps in one program — one on SQLite (no database resource at all:
// what every existing stack registers), two sharing one DatabaseServer (one install step on that server,
// one role-and-database step each, their passwords only in secret stdin) — and the app's environment
// waiting for its database.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { parseConfig } from "../../components/config";
import { DatabaseServer, FlaskApp } from "../../components";
import { HOST_KEY, PROJECT_DIR, rawConfig, tempKeyFile } from "./helpers";

interface Registered { type: string; name: string; urn: string; create?: string; stdinSecret: boolean; deps: string[] }

describe("database: the PostgreSQL steps under mocks", function () {
  this.timeout(60000);
  const registered: Registered[] = [];
  const settle = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));
  const DB = { host: "10.213.0.20", privateKeyPath: tempKeyFile(), hostKey: HOST_KEY };

  before(async () => {
    const raw = rawConfig({ migrationsDir: "migrations" });
    pulumi.runtime.setAllConfig(raw.values, raw.secretKeys);
    await pulumi.runtime.setMocks({
      newResource: (args) => ({ id: `${args.name}-id`, state: { running: true, exists: true, ...args.inputs, stdout: `${args.name} ok\nschema_version=2`, stderr: "" } }),
      call: (args) => args.inputs,
    }, "flask-deploy", "unit-db", false);
    const monitor: any = (pulumi.runtime as any).getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, cb: any) => register(req, (err: any, resp: any) => {
      const fields = req.getObject()?.getFieldsMap();
      const stdin = fields?.get("stdin")?.getStructValue()?.getFieldsMap();
      registered.push({
        type: req.getType(), name: req.getName(), urn: resp?.getUrn(), create: fields?.get("create")?.getStringValue(),
        stdinSecret: stdin?.get("4dabf18193072939515e22adb298388d")?.getStringValue() === "1b47061264138c4ac30d75fd1eb44270",
        deps: req.getDependenciesList(),
      });
      cb(err, resp);
    });
    const cfg = (appName: string, over: Record<string, unknown> = {}, secret = ["secrets", "database", "databasePassword"]) =>
      parseConfig(rawConfig({ appName, serverName: `${appName}.example.com`, migrationsDir: "migrations", ...over }, secret), PROJECT_DIR);
    const pg = { database: { engine: "postgres", host: DB } };
    const db = new DatabaseServer("db", { server: { ...DB, port: 22, user: "root" } });
    const apps = [
      new FlaskApp("lite", { ...cfg("lite"), projectDir: PROJECT_DIR }),
      new FlaskApp("shop", { ...cfg("shop", { ...pg, databasePassword: "shop-password-0123456789" }), projectDir: PROJECT_DIR, databaseServer: db }),
      new FlaskApp("blog", { ...cfg("blog", { ...pg, databasePassword: "blog-password-0123456789" }), projectDir: PROJECT_DIR, databaseServer: db }),
      // `backup` with its own database server: pgBackRest there (issue 33), no Litestream on the app server
      new FlaskApp("safe", { ...cfg("safe", { database: { engine: "postgres", host: { ...DB, host: "10.213.0.21" } },
        databasePassword: "safe-password-0123456789", backup: { replica: "s3://backups/safe", endpoint: "https://10.213.0.9:7070" },
        backupSecrets: { accessKeyId: "AKIA", secretAccessKey: "safe-s3-secret" } }, ["secrets", "database", "databasePassword", "backupSecrets"]),
      projectDir: PROJECT_DIR }),
    ];
    for (const app of apps) await settle(app.url);
    await new Promise((r) => setTimeout(r, 500));
  });

  const named = (re: RegExp) => registered.filter((r) => re.test(r.name)).map((r) => r.name).sort();

  it("an app without `database` registers no database resource", () => {
    assert.deepStrictEqual(named(/^lite-database/), []);
    assert.ok(!registered.some((r) => r.name.startsWith("lite-") && /pg-/.test(r.create ?? "")));
  });

  it("two apps share one server: one install step there, a role-and-database step and a state reading each", () => {
    assert.deepStrictEqual(named(/^db-/), ["db-install", "db-scripts", "db-scripts-upload"]);
    assert.deepStrictEqual(named(/^(shop|blog)-database/), ["blog-database-app", "blog-database-pin", "blog-database-state", "shop-database-app", "shop-database-pin", "shop-database-state"]);
    assert.match(registered.find((r) => r.name === "db-install")!.create!, /\/agent pg-install$/);
    for (const app of ["shop", "blog"]) {
      const step = registered.find((r) => r.name === `${app}-database-app`)!;
      assert.match(step.create!, /\/agent pg-app$/);
      assert.ok(step.stdinSecret, `${app}: the password's stdin is a secret`);
      assert.doesNotMatch(step.create!, /password/);
      // the app's environment (DATABASE_URL) waits for its role and database
      const env = registered.find((r) => r.name === `${app}-env-file`)!;
      assert.ok(env.deps.includes(step.urn), `${app}-env-file waits for ${app}-database-app`);
      // and for the database server's certificate pinned on the app server (pg-pin, after the server's install)
      const pin = registered.find((r) => r.name === `${app}-database-pin`)!;
      assert.match(pin.create!, /\/agent pg-pin$/);
      assert.ok(env.deps.includes(pin.urn), `${app}-env-file waits for ${app}-database-pin`);
      assert.ok(pin.deps.includes(registered.find((r) => r.name === "db-install")!.urn), `${app}-database-pin waits for db-install`);
    }
  });

  it("backup with PostgreSQL: pgBackRest's step on the database server, before the app's database; no Litestream", () => {
    const pgb = registered.find((r) => r.name === "safe-database-pgbackup-pgbackrest")!;
    assert.ok(pgb, "the pgBackRest step");
    assert.match(pgb.create!, /\/agent pg-backup-deploy$/);
    assert.ok(pgb.stdinSecret, "the S3 keys' stdin is a secret");
    const install = registered.find((r) => r.name === "safe-database-server-install")!;
    assert.ok(pgb.deps.includes(install.urn), "after pg-install");
    assert.ok(registered.find((r) => r.name === "safe-database-app")!.deps.includes(pgb.urn), "the app's database after it (a restore first)");
    assert.ok(!registered.some((r) => /^safe-backup/.test(r.name) || /agent backup-deploy$/.test(r.create ?? "")), "no Litestream step");
  });
});
