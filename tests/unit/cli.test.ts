// fdeploy's command line (cli/main.ts): every command has --help and --stack; bad arguments are
// refused before any stack or server is touched; tables line up.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { bytes, table } from "../../cli/lib/print";
import { connectionFromFile, sameConnection, serverResult } from "../../cli/lib/stack";
import { HOST_KEY, PROJECT_DIR, runFdeploy, tempKeyFile } from "./helpers";

const run = (...args: string[]) => runFdeploy(args);
import { tempDir } from "../tmpdir";


describe("fdeploy command line", () => {
  for (const c of ["status", "releases", "logs", "exec", "console", "rollback", "purge", "maintenance", "lock status", "lock release", "jobs", "jobs run"]) {
    it(`${c} --help names --stack and --app`, async () => {
      const r = await run(...c.split(" "), "--help");
      assert.strictEqual(r.code, 0);
      assert.match(r.out, /-s, --stack <name>/);
      assert.match(r.out, /-a, --app <name>/);
    });
  }
  it("refuses bad arguments before reading any stack", async () => {
    for (const [args, msg] of [
      [["rollback", "--stack", "x", "--to", "HEAD"], /--to: expected a release id/],
      [["maintenance", "maybe", "--stack", "x"], /expected on or off/],
      [["logs", "--stack", "x", "-n", "ten"], /--lines: expected a number/],
      [["logs", "--stack", "x", "--since", "1h; rm -rf /"], /--since: expected/],
      [["jobs", "run", "../etc", "--stack", "x"], /is not a job name/],
    ] as [string[], RegExp][]) {
      const r = await run(...args);
      assert.strictEqual(r.code, 2, args.join(" "));
      assert.match(r.err, msg);
    }
    assert.notStrictEqual((await run("nonsense")).code, 0);
  });
  it("reads a server verb's result: the agent's object without its ok flag, or a bundle's value from before the agent", () => {
    assert.deepStrictEqual(serverResult('log line\n{"held": false, "ok": true, "owner": null}\n'), { held: false, owner: null });
    assert.deepStrictEqual(serverResult('{"ok": true, "releases": [{"id": "a"}]}', "releases"), [{ id: "a" }]);
    assert.deepStrictEqual(serverResult('[{"id": "a"}]', "releases"), [{ id: "a" }]);
  });
  it("prints aligned tables and sizes", () => {
    assert.strictEqual(table(["A", "BB"], [["xxx", "y"]]), "A    BB\nxxx  y\n");
    assert.strictEqual(bytes(1536), "1.5 KB");
  });
});

// rollback asks the server for its plan while `pulumi config` runs, of the server the stack's config file names in
// plain values; the answer counts only when the validated config names the same connection
describe("fdeploy: the connection a stack's config file names (connectionFromFile)", () => {
  const file = (text: string) => {
    const p = path.join(tempDir("fdeploy-unit-"), "Pulumi.x.yaml");
    fs.writeFileSync(p, text);
    return { stack: "x", configFile: p, dir: PROJECT_DIR };
  };
  const server = () => `  flask-deploy:server:\n    host: 10.213.0.9\n    port: "2222"\n    user: root\n    privateKeyPath: ${tempKeyFile()}\n    hostKey: ${HOST_KEY}\n`;
  const withSecret = "  flask-deploy:secrets:\n    SECRET_KEY:\n      secure: v1:abc:def\n";

  it("reads app and server from plain values, a secure value elsewhere left out", () => {
    const c = connectionFromFile(file(`config:\n  flask-deploy:appName: notes\n${server()}${withSecret}`));
    assert.ok(c);
    assert.strictEqual(c!.appName, "notes");
    assert.deepStrictEqual([c!.server.host, c!.server.port, c!.server.user, c!.server.hostKey], ["10.213.0.9", 2222, "root", HOST_KEY]);
    assert.ok(sameConnection(c!, { appName: "notes", server: { ...c!.server } }));
    assert.ok(!sameConnection(c!, { appName: "notes", server: { ...c!.server, host: "10.213.0.8" } }));
    assert.ok(!sameConnection(c!, { appName: "other", server: c!.server }));
  });

  it("names none when the file does not settle it alone", () => {
    assert.strictEqual(connectionFromFile({ stack: "x", configFile: "/nonexistent/Pulumi.x.yaml", dir: PROJECT_DIR }), undefined);
    assert.strictEqual(connectionFromFile(file(`environment:\n  - prod-env\nconfig:\n${server()}`)), undefined, "an ESC environment");
    assert.strictEqual(connectionFromFile(file(`config:\n  flask-deploy:server:\n    host: 10.213.0.9\n    hostKey:\n      secure: v1:abc\n`)), undefined,
      "a server setting only a secret holds");
    assert.strictEqual(connectionFromFile(file(`config:\n  flask-deploy:workers: lots\n${server()}`)), undefined, "plain values that do not validate");
  });
});
