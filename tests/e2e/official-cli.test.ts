// A user of the official Pulumi CLI: `pulumi login file://…` with credentials in their own
// PULUMI_HOME, PULUMI_CONFIG_PASSPHRASE in the environment, and an ssh-agent instead of a key file.
// The project's scripts must keep all of that as it is (only the offline path sets defaults); a new
// agent socket must not re-run any step (no socket path in state); a dead one is reported before
// any step runs; and rollback works against the user's backend.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";
import { tempDir } from "../tmpdir";

const CACHE_BIN = path.join(process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy", "bin");

/** A user's machine: the official binaries in their own bin dir, their own PULUMI_HOME, a login. */
function officialUser(): { home: string; pulumiHome: string; backend: string; env: NodeJS.ProcessEnv } {
  const home = tempDir("fdeploy-user-");
  const bin = path.join(home, "bin");
  const pulumiHome = path.join(home, ".pulumi");
  fs.mkdirSync(bin);
  for (const f of ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) fs.symlinkSync(path.join(CACHE_BIN, f), path.join(bin, f));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE", "SSH_AUTH_SOCK", "FDEPLOY_OFFLINE_TOOLCHAIN"]) delete env[k];
  Object.assign(env, {
    HOME: home,
    PATH: [bin, ...(process.env.PATH ?? "").split(":").filter((p) => p !== CACHE_BIN)].join(":"),
    PULUMI_HOME: pulumiHome,
    PULUMI_CONFIG_PASSPHRASE: crypto.randomBytes(16).toString("hex"),
    // what the CLI would download, installed as it would be (no plugin downloads here)
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    FDEPLOY_SERVER_HOST: "",
  });
  const plugin = path.join(process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy", "upstream", "pulumi-resource-command");
  execFileSync("pulumi", ["plugin", "install", "resource", "command", "1.2.1", "--file", plugin], { env, stdio: "pipe" });
  const backend = `file://${path.join(home, "state")}`;
  fs.mkdirSync(path.join(home, "state"));
  execFileSync("pulumi", ["login", backend], { env, stdio: "pipe" });
  return { home, pulumiHome, backend, env };
}

/** An ssh-agent on its own socket, holding KEY. */
function startAgent(dir: string, name: string, key: string): { sock: string; stop(): void } {
  const sock = path.join(dir, `${name}.sock`);
  const out = execFileSync("ssh-agent", ["-s", "-a", sock], { encoding: "utf8" });
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]);
  execFileSync("ssh-add", ["-q", key], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: "pipe" });
  return { sock, stop: () => { try { process.kill(pid); } catch { /* gone */ } } };
}

describe("official CLI: the user's login, passphrase and ssh-agent", function () {
  this.timeout(900000);
  let server: TestServer;
  let user: ReturnType<typeof officialUser>;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  const agents: Array<{ stop(): void }> = [];

  before(() => {
    server = startServer("ocli", 71);
    user = officialUser();
    app = copyApp("ocli");
    const migrations = copyMigrations("ocli");
    stack = new TestStack("ocli", PROJECT_DIR, user.env);
    // no privateKeyPath: the agent signs
    for (const [k, v] of Object.entries({ "server.host": server.host, "server.hostKey": server.hostKey, appDir: app.rel, migrationsDir: migrations.rel, healthTimeoutSeconds: "15" })) {
      stack.setConfig(k, v);
    }
    stack.setConfig("secrets.SECRET_KEY", "ocli-secret", { secret: true });
  });
  after(() => {
    stack?.remove();
    for (const a of agents) a.stop();
    if (user) fs.rmSync(user.home, { recursive: true, force: true });
  });

  it("the project's scripts keep the user's backend, PULUMI_HOME and passphrase", () => {
    const r = spawnSync("bash", [path.join(PROJECT_DIR, "scripts/with-env.sh"), "bash", "-c",
      'echo "home=$PULUMI_HOME backend=${PULUMI_BACKEND_URL:-} passfile=${PULUMI_CONFIG_PASSPHRASE_FILE:-} mode=$FDEPLOY_PULUMI"; pulumi whoami --verbose'],
      { env: user.env, encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`home=${user.pulumiHome} backend= passfile= mode=official`));
    assert.match(r.stdout, new RegExp(`Backend URL: ${user.backend}`));
    assert.ok(fs.existsSync(path.join(user.pulumiHome, "credentials.json")), "the login stays in the user's PULUMI_HOME");
  });

  it("deploys with the ssh-agent and no key file", async () => {
    const a = startAgent(user.home, "agent1", server.keyPath);
    agents.push(a);
    stack.env.SSH_AUTH_SOCK = a.sock;
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await get(`http://${server.host}/health`)).status, 200);
    assert.ok(!stack.stateText().includes(a.sock), "the agent socket path is not in state");
  });

  it("after a new login (another agent socket) a no-op up runs no remote command", () => {
    const a = startAgent(user.home, "agent2", server.keyPath);
    agents.push(a);
    stack.env.SSH_AUTH_SOCK = a.sock;
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /(created|updated|replaced)/);
  });

  it("a dead or missing agent socket is reported before any step runs", () => {
    const stale = path.join(user.home, "stale.sock");
    // a socket file nobody listens on: what an agent that was killed leaves behind
    execFileSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stale]);
    app.edit("wsgi.py", (s) => s + "\n# a change the preview would otherwise show\n");
    for (const [sock, why] of [[stale, /no ssh-agent answers on this socket/], [path.join(user.home, "gone.sock"), /no such socket/]] as const) {
      const good = stack.env.SSH_AUTH_SOCK;
      stack.env.SSH_AUTH_SOCK = sock;
      // an up, not a preview (which never runs steps): it must stop before the first one
      const live = stack.outputs().releaseId;
      const r = stack.run(["up", "--yes", "--skip-preview"]);
      stack.env.SSH_AUTH_SOCK = good;
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, new RegExp(`SSH_AUTH_SOCK=${sock}: `));
      assert.match(r.output, why);
      assert.doesNotMatch(r.output, /command:remote:\S+\s+\S+\s+(creating|updating|replacing)/);
      assert.strictEqual(stack.outputs().releaseId, live, "the failed up changed the stack's release");
    }
  });

  it("npm run rollback works against the user's backend", async () => {
    const first = stack.outputs().releaseId;
    const up = stack.up(); // the code change of the previous case
    assert.strictEqual(up.status, 0, up.output);
    assert.notStrictEqual(stack.outputs().releaseId, first);
    const r = spawnSync("npm", ["run", "--silent", "rollback", "--", "--stack", "ocli", "--config-file", stack.configFile],
      { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8" });
    assert.strictEqual(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.strictEqual((await get(`http://${server.host}/health`)).json().release, first);
  });
});
