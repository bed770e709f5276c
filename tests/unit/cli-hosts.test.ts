// fdeploy on a fleet (README "Scale out"): the record lists every app server and the balancer; --host picks
// one (its address, or 1, 2 … / h1, h2 … in servers order); a command that acts on one server refuses a fleet
// without --host, naming the choices, before any server is reached. A single server needs no --host.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { appsInState, chooseApp } from "../../cli/lib/apps";
import { FdeployError } from "../../cli/lib/errors";
import { hostsOf, oneHost } from "../../cli/lib/hosts";
import { fleetRecord } from "../../components/fleet-record";
import { parseConfig } from "../../components/config";
import { HOST_KEY, PROJECT_DIR, rawConfig, runFdeploy, tempKeyFile } from "./helpers";
import { tempDir } from "../tmpdir";

const FIXTURES = path.join(__dirname, "fixtures", "state");
const target = (fixture: string) => {
  const app = chooseApp(appsInState(JSON.parse(fs.readFileSync(path.join(FIXTURES, `${fixture}.json`), "utf8"))), undefined, "dev");
  return { ...app.record, name: app.name };
};
const refused = (f: () => unknown, msg: RegExp) =>
  assert.throws(f, (e: any) => e instanceof FdeployError && e.exitCode === 2 && msg.test(e.message));

describe("fdeploy --host: one server of a fleet", () => {
  it("the record of a fleet lists its servers and balancer; a single server's record has no fleet", () => {
    const server = (host: string) => ({ host, hostKey: HOST_KEY, privateKeyPath: tempKeyFile() });
    const fleet = parseConfig(rawConfig({
      server: undefined, servers: [server("10.0.0.11"), server("10.0.0.12")], loadBalancer: server("10.0.0.10"),
      secrets: { SECRET_KEY: "k", DATABASE_URL: "postgresql://a@b/c" },
    }), PROJECT_DIR);
    const rec = fleetRecord(fleet).fleet!;
    assert.deepStrictEqual(rec.hosts.map((h) => h.host), ["10.0.0.11", "10.0.0.12"]);
    assert.strictEqual(rec.balancer !== "external" && rec.balancer.host, "10.0.0.10");
    assert.deepStrictEqual(fleetRecord(parseConfig(rawConfig(), PROJECT_DIR)), {}, "a single server: the record as before");
  });

  it("picks by address, index or h<index>; a fleet without --host: the choices; a bad one: the choices", () => {
    const cfg = target("fleet");
    assert.deepStrictEqual(hostsOf(cfg).map((h) => h.host), ["203.0.113.11", "203.0.113.12"]);
    assert.strictEqual(oneHost(cfg, "203.0.113.12", "logs").server.host, "203.0.113.12");
    assert.strictEqual(oneHost(cfg, "2", "logs").server.host, "203.0.113.12");
    assert.strictEqual(oneHost(cfg, "h1", "logs").server.host, "203.0.113.11");
    refused(() => oneHost(cfg, undefined, "exec"),
      /^--host: fdeploy exec acts on one server and app shop runs on 2: 1 203\.0\.113\.11, 2 203\.0\.113\.12$/);
    refused(() => oneHost(cfg, "3", "exec"), /^--host 3: no such app server; the choices: 1 203\.0\.113\.11, 2 203\.0\.113\.12$/);
    refused(() => oneHost(cfg, "203.0.113.99", "exec"), /^--host 203\.0\.113\.99: no such app server/);
  });

  it("a single server: no --host needed; --host 1 or its address is the same server", () => {
    const cfg = target("one-app");
    assert.strictEqual(oneHost(cfg, undefined, "exec"), cfg);
    assert.strictEqual(oneHost(cfg, "1", "exec").server.host, cfg.server.host);
    assert.strictEqual(oneHost(cfg, cfg.server.host, "exec").server.host, cfg.server.host);
  });

  describe("through fdeploy's command line (a fake pulumi; no server is reached)", function () {
    this.timeout(120000);
    const saved = process.env.PATH;
    let dir: string;
    before(() => {
      const bin = tempDir("fdeploy-hosts-pulumi-");
      fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/bash\n[ "$1 $2" = "stack export" ] && cat ${path.join(FIXTURES, "fleet.json")}\n`, { mode: 0o755 });
      process.env.PATH = `${bin}:${saved}`;
      dir = tempDir("fdeploy-hosts-project-");
      fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: shopsite\nruntime: nodejs\n");
    });
    after(() => { process.env.PATH = saved; });

    for (const args of [["exec", "--stack", "dev", "--", "flask", "routes"], ["logs", "--stack", "dev"], ["console", "--stack", "dev"]]) {
      it(`${args[0]} without --host on a fleet: exit 2, the choices`, async () => {
        const r = await runFdeploy(args, dir);
        if (args[0] === "console" && !process.stdin.isTTY) return assert.match(r.err, /console needs a terminal/);
        assert.strictEqual(r.code, 2, r.err);
        assert.match(r.err, new RegExp(`--host: fdeploy ${args[0]} acts on one server and app shop runs on 2: 1 203\\.0\\.113\\.11, 2 203\\.0\\.113\\.12`));
      });
    }
    it("status --host 7: exit 2, the choices", async () => {
      const r = await runFdeploy(["status", "--stack", "dev", "--host", "7"], dir);
      assert.strictEqual(r.code, 2, r.err);
      assert.match(r.err, /--host 7: no such app server; the choices: 1 203\.0\.113\.11, 2 203\.0\.113\.12/);
    });
  });
});
