// Scale out's keys (components/config/servers.ts): servers beside server, loadBalancer, rollout; what
// more than one server cannot do is refused at preview with the reason and the way out.
import * as assert from "assert";
import { parseConfig } from "../../components/config";
import { appServers } from "../../components/config/servers";
import { errorOf, HOST_KEY, PROJECT_DIR, rawConfig, tempKeyFile } from "./helpers";

const srv = (host: string) => ({ host, privateKeyPath: tempKeyFile(), hostKey: HOST_KEY });
const fleet = (over: Record<string, unknown> = {}) => ({
  server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: srv("10.0.0.9"),
  secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/x" }, ...over,
});

describe("config: servers, loadBalancer, rollout", () => {
  it("an existing stack (server only) parses as before: no servers, no balancer, rollout defaults", () => {
    const cfg = parseConfig(rawConfig(), PROJECT_DIR);
    assert.strictEqual(cfg.servers, undefined);
    assert.strictEqual(cfg.loadBalancer, undefined);
    assert.deepStrictEqual(appServers(cfg).map((s) => s.host), ["10.213.0.10"]);
  });

  it("servers: the first is `server`; each gets server's defaults", () => {
    const cfg = parseConfig(rawConfig(fleet({ servers: [srv("10.0.0.1"), srv("10.0.0.2"), srv("10.0.0.3")], rollout: { batchSize: "2" } })), PROJECT_DIR);
    assert.deepStrictEqual(appServers(cfg).map((s) => `${s.user}@${s.host}:${s.port}`), ["root@10.0.0.1:22", "root@10.0.0.2:22", "root@10.0.0.3:22"]);
    assert.strictEqual(cfg.server.host, "10.0.0.1");
    assert.strictEqual((cfg.loadBalancer as any).host, "10.0.0.9");
    assert.deepStrictEqual(cfg.rollout, { batchSize: 2, drainSeconds: 30 });
    assert.strictEqual(parseConfig(rawConfig(fleet({ loadBalancer: "external" })), PROJECT_DIR).loadBalancer, "external");
  });

  it("more than one server with SQLite is refused, with the reason and the way out", () => {
    const e = errorOf(fleet({ secrets: { SECRET_KEY: "s" } }));
    assert.match(e, /flask-deploy:servers: 2 app servers need the database off them: set flask-deploy:database \(README "PostgreSQL"\) or use one server/);
    assert.match(e, /with SQLite each server would write its own database file/);
  });

  it("runtime docker on a fleet is taken (each host builds the release's image)", () => {
    const cfg = parseConfig(rawConfig(fleet({ runtime: "docker" })), PROJECT_DIR);
    assert.deepStrictEqual([cfg.runtime, cfg.servers?.length], ["docker", 2]);
  });

  it("refuses what a fleet cannot do yet, naming the key", () => {
    assert.match(errorOf(fleet({ loadBalancer: undefined })), /flask-deploy:loadBalancer: required with 2 servers/);
    assert.match(errorOf(fleet({ sharedDirs: ["uploads"] })), /flask-deploy:sharedDirs: not supported with 2 servers yet: files one host writes are not on the others/);
    assert.match(errorOf(fleet({ strategy: "canary", loadBalancer: "external" })),
      /flask-deploy:strategy: not supported with 2 servers yet: canary sets the weights of the balancer the stack manages: loadBalancer\.host/);
    assert.match(errorOf(fleet({ server: srv("10.0.0.5") })), /flask-deploy:servers: set either server \(one server\) or servers \(a list\), not both/);
    assert.match(errorOf(fleet({ servers: [srv("10.0.0.1"), srv("10.0.0.1")] })), /flask-deploy:servers: 10\.0\.0\.1:22 is listed twice/);
    assert.match(errorOf(fleet({ loadBalancer: srv("10.0.0.2") })), /flask-deploy:loadBalancer: 10\.0\.0\.2 is also an app server/);
    assert.match(errorOf(fleet({ rollout: { batchSize: 2 } })), /flask-deploy:rollout\.batchSize: 2 would drain all 2 servers at once \(nothing left serving\); expected at most 1/);
    assert.match(errorOf(fleet({ rollout: { batchSize: 0 } })), /flask-deploy:rollout\.batchSize: expected a whole number from 1/);
    assert.match(errorOf(fleet({ rollout: { size: 1 } })), /flask-deploy:rollout\.size: unknown setting \(a typo\?\); known: batchSize, drainSeconds/);
    assert.match(errorOf(fleet({ servers: [{ host: "bad host", hostKey: HOST_KEY }] })), /flask-deploy:servers\.0\.host: expected a host name or IPv4 address/);
    assert.match(errorOf(fleet({ loadBalancer: "mine" })), /flask-deploy:loadBalancer: expected a server like server/);
    assert.match(errorOf(fleet({ database: { engine: "postgres", host: "app" }, databasePassword: "p".repeat(20) })),
      /flask-deploy:database\.host: app with 2 servers: expected a database server of its own .* or database\.url\n.*each server would run its own PostgreSQL/);
  });
});
