// `database` / `databasePassword` (components/config/database.ts): the two forms, the defaults, the URL
// the app gets, and every refusal naming its key and the expected form.
import * as assert from "assert";
import { databaseSettings, databaseUrl, parseConfig } from "../../components/config";
import { pinnedCaFile } from "../../components/config/database";
import { unitStageParams } from "../../components/gunicorn";
import { HOST_KEY, PROJECT_DIR, rawConfig, refusal } from "./helpers";

const PW = "correct-horse-battery-staple";
const SECRET = ["secrets", "database", "databasePassword"];
const parse = (over: Record<string, unknown>, secret = SECRET) => parseConfig(rawConfig(over, secret), PROJECT_DIR);
const errorOf = (over: Record<string, unknown>, secret = SECRET) => refusal(() => parse(over, secret));
const url = (over: Record<string, unknown>) => {
  const cfg = parse(over);
  return databaseUrl(databaseSettings(cfg)!);
};

describe("database config", () => {
  it("is unset by default: SQLite, no DATABASE_URL", () => {
    const cfg = parse({});
    assert.strictEqual(cfg.database, undefined);
    assert.strictEqual(databaseSettings(cfg), undefined);
  });

  it("host app: the role and database are named for the app; DATABASE_URL to 127.0.0.1 without TLS", () => {
    assert.strictEqual(url({ appName: "my-shop", database: { engine: "postgres", host: "app" }, databasePassword: PW }),
      `postgresql://my_shop:${PW}@127.0.0.1:5432/my_shop`);
  });

  it("a server of its own: its certificate pinned (verify-full, the app's CA file), the password percent-encoded, name and user as set", () => {
    const cfg = parse({ database: { engine: "postgres", host: { host: "10.0.0.5", hostKey: HOST_KEY }, name: "shop", user: "shop_rw" },
      databasePassword: "p@ss:/word#1234567" });
    const s = databaseSettings(cfg)!;
    assert.strictEqual(s.kind === "managed" && s.server!.port, 22);
    assert.strictEqual(databaseUrl(s), "postgresql://shop_rw:p%40ss%3A%2Fword%231234567@10.0.0.5:5432/shop?sslmode=verify-full&sslrootcert=/etc/fdeploy/flaskapp.pg-root.crt");
  });

  it("url: taken as it is, databasePassword filled in when it holds none", () => {
    assert.strictEqual(url({ database: { url: "postgresql://u:pw@db.example.com:6543/x?sslmode=verify-full" } }),
      "postgresql://u:pw@db.example.com:6543/x?sslmode=verify-full");
    assert.strictEqual(url({ database: { url: "postgres://u@db.example.com/x" }, databasePassword: PW }), `postgres://u:${PW}@db.example.com/x`);
  });

  it("refuses bad values, naming the key and the expected form", () => {
    assert.match(errorOf({ database: { engine: "mysql", host: "app" }, databasePassword: PW }), /flask-deploy:database(\.engine)?: expected/);
    assert.match(errorOf({ database: { engine: "postgres", host: "elsewhere" }, databasePassword: PW }), /flask-deploy:database(\.host)?: expected/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app", name: "Bad-Name" }, databasePassword: PW }),
      /flask-deploy:database\.name: database\.name: expected a PostgreSQL name/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app", user: "postgres" }, databasePassword: PW }), /database\.user: .*PostgreSQL's own/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app" } }), /flask-deploy:databasePassword: required with database\.engine postgres/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app" }, databasePassword: "short" }), /flask-deploy:databasePassword: expected a password of 16-200/);
    assert.match(errorOf({ database: { url: "mysql://u:p@h/x" } }), /flask-deploy:database(\.url)?: expected a PostgreSQL URL/);
    assert.match(errorOf({ database: { url: "postgresql://u@h/x" } }), /flask-deploy:databasePassword: required: database\.url holds no password/);
    assert.match(errorOf({ databasePassword: PW }), /flask-deploy:databasePassword: set, but database is not/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app", port: 5 }, databasePassword: PW }), /flask-deploy:database\.port: unknown setting/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app" }, databasePassword: PW, env: { DATABASE_URL: "x" } }),
      /flask-deploy:env\.DATABASE_URL: is set by the deploy itself when database is set/);
    assert.match(errorOf({ runtime: "docker", database: { engine: "postgres", host: "app" }, databasePassword: PW }),
      /flask-deploy:database\.host: "app" is not supported with runtime docker yet/);
    assert.match(errorOf({ appName: "pg-shop", database: { engine: "postgres", host: "app" }, databasePassword: PW }),
      /flask-deploy:database\.name: the default \(appName as pg_shop\) is not a usable PostgreSQL name/);
  });

  it("runtime docker: the unit step's inputs name the pinned CA file, so moving from a url to a managed server re-stages the unit", () => {
    // the same environment names either way (DATABASE_URL): before, nothing in the step's inputs changed, and the
    // unit staged without the pin never mounted it into the container (verify-full failed there)
    const unit = (over: Record<string, unknown>) => {
      const cfg = parse({ runtime: "docker", ...over });
      return unitStageParams({ appName: cfg.appName, workers: 2, appModule: "wsgi:app", timeoutSeconds: 60,
        docker: { envNames: ["DATABASE_URL", "DATABASE_PATH"], sharedDirs: [], pgPin: pinnedCaFile(cfg) } });
    };
    const managed = unit({ database: { engine: "postgres", host: { host: "10.0.0.5", hostKey: HOST_KEY } }, databasePassword: PW });
    const viaUrl = unit({ database: { url: "postgresql://u:pw@db.example/shop?sslmode=require" } });
    assert.strictEqual(managed.PG_PIN, "/etc/fdeploy/flaskapp.pg-root.crt");
    assert.ok(!("PG_PIN" in viaUrl) && !("PG_PIN" in unit({})), "no pin: no PG_PIN (the unit's inputs as before)");
    assert.deepStrictEqual({ ...viaUrl, PG_PIN: managed.PG_PIN }, managed, "PG_PIN is the one difference");
    assert.strictEqual(pinnedCaFile(parse({ database: { engine: "postgres", host: "app" }, databasePassword: PW })), undefined);
  });

  it("a url or password in plaintext is refused: they must be secrets", () => {
    assert.match(errorOf({ database: { url: "postgresql://u:pw@h/x" } }, ["secrets"]), /flask-deploy:database: a url holds credentials and must be set as a secret/);
    assert.match(errorOf({ database: { engine: "postgres", host: "app" }, databasePassword: PW }, ["secrets"]),
      /flask-deploy:databasePassword: must be set as a secret/);
  });

  it("an existing stack's env.DATABASE_URL stays its own without database", () => {
    assert.strictEqual(parse({ env: { DATABASE_URL: "sqlite:///${DATABASE_PATH}" } }).env.DATABASE_URL, "sqlite:///${DATABASE_PATH}");
  });
});
