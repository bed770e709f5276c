// The FlaskApp refuses at preview a server that moved places in `servers` (components/server-order.ts), read from
// the stack's last `server` output (a StackReference to itself, here a mock), before any step of the app exists.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { parseConfig } from "../../components/config";
import { FlaskApp } from "../../components";
import { HOST_KEY, PROJECT_DIR, rawConfig, tempKeyFile } from "./helpers";

describe("FlaskApp: a server that moved places in servers is refused (under mocks)", function () {
  this.timeout(60000);
  const created: string[] = [];

  before(async () => {
    const raw = rawConfig({ migrationsDir: "none" });
    pulumi.runtime.setAllConfig(raw.values, raw.secretKeys);
    await pulumi.runtime.setMocks({
      newResource: (args) => {
        created.push(args.name);
        const outputs = { server: "root@10.0.0.1:22, root@10.0.0.2:22" };   // the last up: 10.0.0.1 first, 10.0.0.2 second
        return { id: `${args.name}-id`, state: { ...args.inputs, stdout: "", stderr: "", ...(args.type === "pulumi:pulumi:StackReference" ? { outputs } : {}) } };
      },
      call: (args) => args.inputs,
    }, "flask-deploy", "unit-order", false, "organization");
  });

  const app = (name: string, hosts: string[]) => new FlaskApp(name, { ...parseConfig(rawConfig({
    server: undefined, servers: hosts.map((host) => ({ host, privateKeyPath: tempKeyFile(), hostKey: HOST_KEY })), loadBalancer: { host: "10.0.0.9", privateKeyPath: tempKeyFile(), hostKey: HOST_KEY },
    appName: "shop", migrationsDir: "none", secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/shop" },
  }), PROJECT_DIR), projectDir: PROJECT_DIR });
  const urlOf = (a: FlaskApp) => (a.url as any).promise() as Promise<string>;

  it("servers[0] removed (10.0.0.2 would take its place): refused naming servers, nothing of the app registered", async () => {
    await assert.rejects(urlOf(app("mv", ["10.0.0.2"])), /flask-deploy:servers: 10\.0\.0\.2 moved from servers\[1\] to servers\[0\]/);
    assert.deepStrictEqual(created.filter((n) => n.startsWith("mv-") && n !== "mv-previous-outputs"), []);
  });

  it("the last server removed: deployed (the first host's steps, no -h2)", async () => {
    assert.match(await urlOf(app("rm", ["10.0.0.1"])), /^http:\/\//);
    assert.ok(created.includes("rm-release-install") && !created.some((n) => n.startsWith("rm-") && n.includes("-h2")), created.join(", "));
  });
});
