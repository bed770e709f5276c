// The SSH connection as the official command plugin uses it: the agent socket is checked before
// any step runs, and its path never becomes an input.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { checkAgent, connectionFor } from "../../components/connection";
import { HOST_KEY, tempKeyFile } from "./helpers";
import { tempDir } from "../tmpdir";

describe("SSH connection", () => {
  const dir = tempDir("fdeploy-agent-");
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("refuses no key file and no agent, naming server.privateKeyPath", () => {
    assert.throws(() => checkAgent(undefined, false), /flask-deploy:server\.privateKeyPath: not set and no ssh-agent/);
    assert.doesNotThrow(() => checkAgent(undefined, true));
  });

  it("names a missing agent socket, even with a key file (the plugin would fail every step)", () => {
    assert.throws(() => checkAgent(path.join(dir, "gone.sock"), true), /SSH_AUTH_SOCK=.*gone\.sock: no such socket/);
  });

  it("names a stale socket nobody listens on", () => {
    const stale = path.join(dir, "stale.sock");
    spawnSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stale]);
    assert.throws(() => checkAgent(stale, true), /no ssh-agent answers on this socket/);
  });

  it("accepts a live agent, and never puts its socket path into the connection", () => {
    const sock = path.join(dir, "live.sock");
    const out = spawnSync("ssh-agent", ["-s", "-a", sock], { encoding: "utf8" }).stdout;
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]);
    try {
      checkAgent(sock, false);
      const c = connectionFor({ host: "10.0.0.1", port: 22, user: "root", hostKey: HOST_KEY }, { SSH_AUTH_SOCK: sock });
      assert.strictEqual((c as any).agentSocketPath, undefined);
      assert.strictEqual(c.privateKey, undefined);
      const k = connectionFor({ host: "10.0.0.1", port: 22, user: "root", hostKey: HOST_KEY, privateKeyPath: tempKeyFile() }, { SSH_AUTH_SOCK: sock });
      assert.ok(k.privateKey, "the key file is sent (as a secret)");
    } finally {
      process.kill(pid);
    }
  });
});
