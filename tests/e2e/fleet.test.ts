// Scale out (README "Scale out"): one app on two servers behind an HAProxy balancer the stack manages
// (servers fl-app1, fl-app2, fl-lb: octets 225-227). One up deploys both hosts and the balancer; a code
// deploy under a request loop through the balancer fails no request; a release that fails its health
// check on the second host stops the rollout, the first host goes back, and both hosts, the balancer, the
// outputs and a preview show the previous release. The app keeps no data on its servers (its database
// would be PostgreSQL: the stack says so with a DATABASE_URL secret the fixture app does not read).
// Time: about 5 min warm (3 servers, 3 ups, 1 failed up, 1 preview, 1 destroy).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { get } from "./app-copy";
import { startLoad } from "./load";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";

const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/fleet-app");
const UNHEALTHY = "/etc/fl-unhealthy";   // the broken release fails its health check where this file exists

describe("scale out: two app servers behind HAProxy", function () {
  this.timeout(900000);
  let app1: TestServer, app2: TestServer, lb: TestServer;
  let stack: TestStack;
  const rel = path.join(".e2e", "fleet", "app");
  const appDir = path.join(PROJECT_DIR, rel);
  const editApp = (f: (s: string) => string) => fs.writeFileSync(path.join(appDir, "wsgi.py"), f(fs.readFileSync(path.join(appDir, "wsgi.py"), "utf8")));
  const releaseOn = async (host: string) => (await get(`http://${host}/health`)).json().release as string;
  // the balancer's view: each host's state in HAProxy (the agent's lb-status on the balancer)
  const balancerStatus = (): Record<string, string> => {
    const dir = lb.ssh("ls -d /root/.fdeploy/fleetapp/scripts-* | tail -1").trim();
    const r = JSON.parse(lb.ssh(`python3 -I -B ${dir}/agent lb-status`, JSON.stringify({ APP: "fleetapp" })).trim().split("\n").pop()!);
    return Object.fromEntries(Object.entries(r.servers).map(([k, v]: [string, any]) => [k, v.status]));
  };
  const waitBothUp = async () => {   // the balancer checks each host every second and needs two passes
    const deadline = Date.now() + 15000;
    while (Object.values(balancerStatus()).some((s) => !s.startsWith("UP")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    assert.deepStrictEqual(balancerStatus(), { h1: "UP", h2: "UP" });
  };

  before(() => {
    app1 = startServer("fl-app1", 225);
    app2 = startServer("fl-app2", 226);
    lb = startServer("fl-lb", 227);
    fs.rmSync(appDir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(appDir), { recursive: true });
    fs.cpSync(FIXTURE, appDir, { recursive: true });
    stack = new TestStack("fleet");
    const settings: Record<string, string> = { appName: "fleetapp", appDir: rel, migrationsDir: "none", healthTimeoutSeconds: "10", "rollout.drainSeconds": "5" };
    [app1, app2].forEach((s, i) => Object.assign(settings, {
      [`servers[${i}].host`]: s.host, [`servers[${i}].privateKeyPath`]: s.keyPath, [`servers[${i}].hostKey`]: s.hostKey,
    }));
    Object.assign(settings, { "loadBalancer.host": lb.host, "loadBalancer.privateKeyPath": lb.keyPath, "loadBalancer.hostKey": lb.hostKey });
    for (const [k, v] of Object.entries(settings)) stack.setConfig(k, v);
    stack.setConfig("secrets.SECRET_KEY", "fleet-secret", { secret: true });
    stack.setConfig("secrets.DATABASE_URL", "postgresql://fleetapp:pw@10.213.0.228/fleetapp", { secret: true });
  });
  after(() => {
    stack?.remove();
    fs.rmSync(path.dirname(appDir), { recursive: true, force: true });
  });

  it("one up deploys the release on both servers and HAProxy in front; both serve through the balancer", async () => {
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      first up: ${Math.round((Date.now() - t0) / 1000)} s`);
    const out = stack.outputs();
    assert.deepStrictEqual(out.hosts, { [app1.host]: out.releaseId, [app2.host]: out.releaseId });
    assert.strictEqual(out.server, `root@${app1.host}:22, root@${app2.host}:22`);
    assert.strictEqual(await releaseOn(app1.host), out.releaseId);
    assert.strictEqual(await releaseOn(app2.host), out.releaseId);
    await waitBothUp();
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const h = (await get(`http://${lb.host}/`)).json();
      assert.strictEqual(h.release, out.releaseId);
      served.add(h.host);
    }
    assert.deepStrictEqual([...served].sort(), ["fl-app1", "fl-app2"], "round robin over both hosts");
    // haproxy.cfg from the stack, checked by haproxy itself
    assert.match(lb.ssh("haproxy -c -f /etc/haproxy/haproxy.cfg 2>&1; cat /etc/haproxy/haproxy.cfg"), new RegExp(`server h2 ${app2.host.replace(/\./g, "\\.")}:80`));
  });

  it("a second up changes nothing", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /fleet-rollout\s+(created|updated|replaced)/);
  });

  it("a code deploy rolls host by host under load through the balancer: 0 failed requests", async () => {
    const before = stack.outputs().releaseId;
    editApp((s) => s.replace('"hello"', '"hello again"'));
    const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 240 });
    const t0 = Date.now();
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);   // the load runs meanwhile
    const seconds = Math.round((Date.now() - t0) / 1000);
    const result = await load.stop();
    assert.strictEqual(r.status, 0, r.output);
    const out = stack.outputs();
    assert.notStrictEqual(out.releaseId, before);
    const rollout = /app-fleet-rollout updated \((\d+)s\)/.exec(r.output)?.[1];   // the switch phase: both hosts, one by one
    console.log(`      code deploy: ${seconds} s (the fleet switch ${rollout} s); ${result.requests} requests through the balancer, ${result.failures} failed, max ${result.maxLatencyMs} ms`);
    assert.strictEqual(result.failures, 0, result.errors.join(", "));
    assert.ok(result.requests > 50, `${result.requests} requests`);
    assert.deepStrictEqual(out.hosts, { [app1.host]: out.releaseId, [app2.host]: out.releaseId });
  });

  it("a release that fails its health check on the second host: the first goes back, the up fails naming the host", async () => {
    const good = stack.outputs().releaseId;
    app2.ssh(`touch ${UNHEALTHY}`);
    editApp((s) => s.replace('def health():\n', `def health():\n    if os.path.exists("${UNHEALTHY}"):\n        return jsonify(status="error"), 503\n`));
    const load = startLoad(`http://${lb.host}/`, { concurrency: 2, maxSeconds: 240 });
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const result = await load.stop();
    assert.notStrictEqual(r.status, 0, "the up fails");
    // every host serves the previous release, directly and through the balancer
    assert.strictEqual(await releaseOn(app1.host), good, "the first host went back");
    assert.strictEqual(await releaseOn(app2.host), good);
    assert.match(r.output, new RegExp(`stopped at host ${app2.host.replace(/\./g, "\\.")}`));
    assert.match(r.output, new RegExp(`went back to their previous release: ${app1.host.replace(/\./g, "\\.")}`));
    await waitBothUp();
    for (let i = 0; i < 4; i++) assert.strictEqual((await get(`http://${lb.host}/`)).json().release, good);
    console.log(`      failed rollout: ${result.requests} requests through the balancer, ${result.failures} failed`);
    assert.strictEqual(result.failures, 0, result.errors.join(", "));
    // state tells the truth: the outputs keep the previous release everywhere; a preview shows the rollout to do again
    assert.deepStrictEqual(stack.outputs().hosts, { [app1.host]: good, [app2.host]: good });
    const p = stack.preview();
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /fleet-rollout/);
    app2.ssh(`rm -f ${UNHEALTHY}`);
  });

  it("destroy takes the app's part off the balancer, which stops with no app left", () => {
    const r = stack.run(["destroy", "--yes", "--skip-preview"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(lb.trySsh("test -e /etc/fdeploy/haproxy/fleetapp.json").status, 1);
    assert.strictEqual(lb.trySsh("systemctl is-active haproxy").stdout.trim(), "inactive");
  });
});
