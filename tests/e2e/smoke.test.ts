// Foundation check: a real `pulumi up` runs a remote.Command over SSH on a real Debian server with
// systemd inside; an input change updates it; `pulumi destroy` runs its delete command.
import * as assert from "assert";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { TestStack } from "./pulumi";

describe("smoke: remote.Command on a test server", function () {
  this.timeout(300000);
  let server: TestServer;
  let stack: TestStack;

  before(() => {
    server = startServer("smoke", 31);
    stack = new TestStack("smoke", path.join(__dirname, "smoke"));
    stack.setConfig("host", server.host);
    stack.setConfig("keyPath", server.keyPath);
    stack.setConfig("hostKey", server.hostKey);
    stack.setConfig("message", "first");
  });
  after(() => stack?.remove());

  it("creates: the command ran on the server, under systemd", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.ssh("cat /root/smoke-marker"), "first");
    assert.strictEqual(stack.outputs().stdout, "running");
    assert.strictEqual(server.ssh("ps -p 1 -o comm="), "systemd\n");
  });

  it("updates when an input changes", () => {
    stack.setConfig("message", "second");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /~ +command:remote:Command +marker +updated/);
    assert.strictEqual(server.ssh("cat /root/smoke-marker"), "second");
    assert.strictEqual(stack.outputs().stdout, "updated");
  });

  it("changes nothing when nothing changed", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /2 unchanged/);
  });

  it("runs the delete command on destroy", () => {
    const r = stack.destroy();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.trySsh("test -e /root/smoke-marker").status, 1);
    assert.strictEqual(server.trySsh("test -e /root/smoke-deleted").status, 0);
  });
});
