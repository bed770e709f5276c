// The resource graph of index.ts under Pulumi mocks: which steps exist, what each depends on, what
// triggers what, and that secrets and config values travel only as (secret) data.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { HOST_KEY, rawConfig } from "./helpers";
import { hashFiles } from "../../components/upload";
import { DIAL_ERROR_LIMIT } from "../../components/connection";

interface Registered {
  type: string;
  name: string;
  inputs: any;
  deps: string[];
}

// how the SDK marks a secret value on the wire
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

const registered = new Map<string, Registered>();
let outputs: Record<string, any> = {};

function byName(name: string): Registered {
  const r = registered.get(name);
  assert.ok(r, `no resource named ${name}; have: ${[...registered.keys()].join(", ")}`);
  return r!;
}

/** The names of all custom resources `name` depends on (directly). */
function depsOf(name: string): string[] {
  return byName(name).deps.map((urn) => urn.split("::").pop()!);
}

describe("resource graph (index.ts under mocks)", function () {
  this.timeout(60000);

  before(async () => {
    const raw = rawConfig({ migrationsDir: "migrations" });
    pulumi.runtime.setAllConfig(raw.values, raw.secretKeys);
    await pulumi.runtime.setMocks({
      newResource: (args) => ({ id: `${args.name}-id`, state: { ...args.inputs, stdout: `${args.name} ok\nschema_version=2`, stderr: "" } }),
      call: (args) => args.inputs,
    }, "flask-deploy", "unit", false);
    // capture each registration's dependencies, which the mock callbacks don't see
    const monitor: any = (pulumi.runtime as any).getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, cb: any) => {
      const deps: string[] = req.getDependenciesList();
      // inputs as sent to the engine: secrets are still wrapped in their signature object here
      const inputs = req.getObject()?.toJavaScript();
      // the FlaskApp "app" names its children app-<step>: recorded as <step>
      const name = req.getName().replace(/^app-/, "");
      registered.set(name, { type: req.getType(), name, inputs, deps: deps.map((d) => d.replace(/::app-([^:]+)$/, "::$1")) });
      return register(req, cb);
    };
    const program = require("../../index");   // the program: its exports are the stack outputs
    const settle = (o: any) => new Promise((resolve) => pulumi.output(o).apply(resolve));
    for (const k of Object.keys(program)) outputs[k] = await settle(program[k]);
    // wait for every input to settle
    await new Promise((r) => setTimeout(r, 500));
  });

  it("creates one step per server concern", () => {
    const commands = [...registered.values()].filter((r) => r.type.startsWith("command:")).map((r) => r.name).sort();
    assert.deepStrictEqual(commands, [
      "activation-switch", "base-setup", "env-file", "gunicorn-unit", "health-probe", "migrations-apply",
      "migrations-upload", "nginx-site", "preflight-check", "release-install", "release-upload", "scripts-upload",
    ]);
  });

  it("has no offsite backup step unless backup.replica is set (existing stacks see no change)", () => {
    assert.deepStrictEqual([...registered.keys()].filter((k) => k.startsWith("backup")), []);
    assert.ok(!depsOf("migrations-apply").some((d) => d.startsWith("backup")));
  });

  it("has no job steps unless jobs are configured (existing stacks see no change)", () => {
    assert.deepStrictEqual([...registered.keys()].filter((k) => k.startsWith("job")), []);
    assert.deepStrictEqual(depsOf("base-setup"), ["scripts-upload"]);
  });

  it("orders the deploy: base, release, migrations, then the switch, nginx and the check", () => {
    assert.ok(depsOf("base-setup").includes("scripts-upload"));
    assert.ok(depsOf("release-upload").includes("release-basis"), "the upload sends what the release deployed before lacks");
    assert.ok(depsOf("release-upload").includes("base-setup"));
    assert.strictEqual(registered.get("release-basis")?.type, "pulumi-nodejs:dynamic:Resource", "a local step: no SSH before the upload");
    assert.ok(depsOf("release-install").includes("release-upload"));
    assert.ok(depsOf("migrations-apply").includes("release-install"), "migrations run after the release is installed");
    assert.ok(depsOf("migrations-apply").includes("env-file"));
    // the release loads with its staged settings before anything touches the database (issue 24, defect 2)
    for (const d of ["release-install", "env-file", "gunicorn-unit"]) assert.ok(depsOf("preflight-check").includes(d), `the preflight waits for ${d}`);
    assert.ok(depsOf("migrations-apply").includes("preflight-check"), "migrations wait for the preflight");
    assert.ok(depsOf("activation-switch").includes("preflight-check"));
    for (const d of ["release-install", "migrations-apply", "gunicorn-unit", "env-file"]) {
      assert.ok(depsOf("activation-switch").includes(d), `the switch waits for ${d}`);
    }
    assert.ok(depsOf("nginx-site").includes("activation-switch"));
    assert.ok(depsOf("health-probe").includes("nginx-site"));
  });

  it("sends the .env content only as a secret on stdin", () => {
    const stdin = byName("env-file").inputs.stdin;
    assert.strictEqual(stdin[SECRET_SIG], SECRET_VALUE, "stdin of env-file must be a secret");
    assert.match(stdin.value, /SECRET_KEY=/);
  });

  it("keeps config values out of every command line", () => {
    for (const r of registered.values()) {
      if (!r.type.startsWith("command:remote:Command")) continue;
      for (const field of ["create", "delete", "update"]) {
        const line: string | undefined = r.inputs[field];
        if (line === undefined) continue;
        const supervise = `python3 -I -B \\.fdeploy\\/flaskapp\\/scripts-[0-9a-f]{12}\\/agent supervise \\d+ ${r.name} timeouts\\.(build|releaseCommands|default) --lock-wait 120 -- `;
        assert.match(line, new RegExp(`^${supervise}(bash \\.fdeploy\\/flaskapp\\/scripts-[0-9a-f]{12}\\/[a-z]+\\.sh (create|delete flaskapp)|python3 -I -B \\.fdeploy\\/flaskapp\\/scripts-[0-9a-f]{12}\\/agent [a-z-]+( --app flaskapp)?)$`), `${r.name}.${field}: ${line}`);
        assert.ok(!line.includes("example.com") && !line.includes("s3cr3t"), `${r.name}.${field} holds a config value`);
      }
    }
  });

  it("every remote step runs under the supervisor with its time limit: build 30m, release commands 30m, the rest 5m (plus their own waits); the lock wait 120 s", () => {
    const limit = (name: string) => Number(/ supervise (\d+) /.exec(byName(name).inputs.create)![1]);
    assert.strictEqual(limit("release-install"), 1800);
    assert.strictEqual(limit("base-setup"), 1800);
    assert.strictEqual(limit("env-file"), 300);
    assert.strictEqual(limit("nginx-site"), 300);
    assert.ok(limit("activation-switch") > 300, "the switch gets its health timeouts on top");
    assert.match(byName("base-setup").inputs.delete, / supervise 300 base-setup timeouts\.default --lock-wait 120 -- python3 -I -B \S+\/agent base-delete --app flaskapp$/);
  });

  it("lists each migration in the migration step's triggers, so preview shows new ones", () => {
    const triggers: string[] = byName("migrations-apply").inputs.triggers;
    assert.deepStrictEqual(triggers.map((t) => t.split(" ")[0]), ["0001_create_notes", "0002_add_notes_created_at"]);
  });

  it("replaces the release when its content hash changes", () => {
    assert.deepStrictEqual(byName("release-install").inputs.triggers, [outputs.releaseId]);
    assert.match(byName("release-upload").inputs.remotePath, new RegExp(`uploads/${outputs.releaseId}$`));
  });

  // pulumi-resource-command 1.2.1 (remote/copyController.go) refuses any source but a FileAsset,
  // a StringAsset or a path-based FileArchive: an AssetArchive fails every preview.
  it("uploads only path-based FileArchives of staged, content-addressed folders", () => {
    const uploads = [...registered.values()].filter((r) => r.type === "command:remote:CopyToRemote");
    assert.strictEqual(uploads.length, 3);
    for (const u of uploads) {
      const src = u.inputs.source;
      assert.strictEqual(src[SECRET_SIG], "0def7320c3a5731c473e5ecbe6d01bc7", `${u.name}: source must be an archive`);
      assert.ok(typeof src.path === "string" && src.assets === undefined, `${u.name}: source must be a path archive, got ${JSON.stringify(src)}`);
      assert.ok(src.path.endsWith("/"), `${u.name}: a trailing slash copies the folder's contents into remotePath`);
      const hash: string = u.inputs.triggers[0];
      assert.ok(path.basename(src.path).endsWith(`-${hash}`), `${u.name}: staged folder named by its hash`);
      assert.strictEqual(hashFiles(src.path), hash, `${u.name}: the staged files are exactly the hashed ones`);
      assert.strictEqual(u.inputs.triggers[1], `root@10.213.0.10:22 ${HOST_KEY}`, `${u.name}: a new target host (or host key) must re-copy`);
    }
  });

  it("keeps the ssh-agent socket path out of the inputs (and so out of state)", () => {
    for (const r of registered.values()) {
      if (!r.type.startsWith("command:remote:")) continue;
      const conn = r.inputs.connection?.value ?? r.inputs.connection;
      assert.strictEqual(conn.agentSocketPath, undefined, `${r.name} stores an agent socket path`);
      assert.strictEqual(conn.dialErrorLimit, DIAL_ERROR_LIMIT);
    }
  });

  it("names the release after the content hash of the app", () => {
    assert.match(outputs.releaseId, /^[0-9a-f]{12}$/);
  });

  it("reports URL, server, app path and schema version", () => {
    assert.strictEqual(outputs.url, "http://example.com/");
    assert.strictEqual(outputs.server, "root@10.213.0.10:22");
    assert.strictEqual(outputs.appPath, "/srv/flaskapp");
    assert.strictEqual(outputs.schemaVersion, 2);
  });
});
