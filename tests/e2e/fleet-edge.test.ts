// The balancer's edge (README "Scale out"): fdeploy on a fleet — status shows every host and the balancer's
// view (UP/DRAIN from HAProxy's runtime API), --host picks one host, a command that needs one names the
// choices —, maintenance mode at the balancer (one 503 page for every host, kept by a deploy, while the
// hosts themselves keep serving) and HTTPS at the balancer with the stack's own certificate, behind which the app
// sees https and the client's address (a client at a host directly cannot claim either) (servers fe-app1,
// fe-app2, fe-lb: octets 233-235).
// Time: about 5 min warm (3 servers, 4 ups, 1 destroy); the forwarded-scheme case well under 1 s.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import { tempDir } from "../tmpdir";
import { startServer, TestServer } from "../servers";
import { get } from "./app-copy";
import { changed, PROJECT_DIR, RunResult, TestStack } from "./pulumi";

const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/fleet-app");
const APP = "edgeapp";
const NAME = "edge.fdeploy.test";

/** GET P over HTTPS from HOST with SNI and Host NAME (and HEADERS), trusting CA; the certificate's issuer and the HSTS header. */
function getHttps(host: string, name: string, ca: string, p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; issuer: string; hsts?: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: 443, path: p, servername: name, headers: { ...headers, Host: name }, ca, agent: false, timeout: 10000 }, (res) => {
      const issuer = String((res.socket as import("tls").TLSSocket).getPeerCertificate().issuer?.CN ?? "");
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, issuer, hsts: res.headers["strict-transport-security"] as string | undefined }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

/** GET P over plain HTTP from HOST with Host NAME (and HEADERS); redirects are not followed. */
function getHttp(host: string, name: string, p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: 80, path: p, headers: { ...headers, Host: name }, agent: false, timeout: 10000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, location: res.headers.location }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

describe("the balancer's edge: fdeploy --host, status and maintenance on a fleet", function () {
  this.timeout(900000);
  let app1: TestServer, app2: TestServer, lb: TestServer;
  let stack: TestStack;
  let tlsCa = "";   // the balancer's certificate, once HTTPS is on
  const rel = path.join(".e2e", "fleet-edge", "app");
  const appDir = path.join(PROJECT_DIR, rel);
  const editApp = (f: (s: string) => string) => fs.writeFileSync(path.join(appDir, "wsgi.py"), f(fs.readFileSync(path.join(appDir, "wsgi.py"), "utf8")));

  /** `fdeploy WORDS --stack … --config-file … [-- CMD]` (the bin, as a user runs it). */
  function fdeploy(...words: string[]): RunResult {
    const cut = words.includes("--") ? words.indexOf("--") : words.length;
    const argv = [...words.slice(0, cut), "--stack", stack.name, "--config-file", stack.configFile, ...words.slice(cut)];
    const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...argv],
      { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8", input: "" });
    const stdout = r.stdout ?? "", stderr = r.stderr ?? "";
    return { status: r.status ?? -1, stdout, stderr, output: stdout + stderr };
  }
  const status = () => {
    const r = fdeploy("status", "--json");
    assert.strictEqual(r.status, 0, r.output);
    return JSON.parse(r.stdout);
  };
  const lbAgent = (verb: string, params: Record<string, unknown>) => {
    const dir = lb.ssh(`ls -td /root/.fdeploy/${APP}/scripts-* | head -1`).trim();
    return lb.ssh(`python3 -I -B ${dir}/agent ${verb}`, JSON.stringify({ APP, ...params }));
  };
  const balancerView = () => Object.fromEntries(Object.entries<any>(status().balancer.hosts).map(([h, s]) => [h, s.status]));
  const waitBothUp = async () => {   // the balancer checks each host every second and needs two passes (asked directly: quicker)
    const up = () => Object.values<any>(JSON.parse(lbAgent("lb-status", {}).trim().split("\n").pop()!).servers).every((s) => s.status === "UP");
    const deadline = Date.now() + 15000;
    while (!up() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    assert.ok(up(), "both hosts UP at the balancer");
  };

  before(() => {
    app1 = startServer("fe-app1", 233);
    app2 = startServer("fe-app2", 234);
    lb = startServer("fe-lb", 235);
    fs.rmSync(appDir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(appDir), { recursive: true });
    fs.cpSync(FIXTURE, appDir, { recursive: true });
    stack = new TestStack("fleet-edge");
    const settings: Record<string, string> = { appName: APP, appDir: rel, migrationsDir: "none", healthTimeoutSeconds: "10", "rollout.drainSeconds": "5" };
    [app1, app2].forEach((s, i) => Object.assign(settings, {
      [`servers[${i}].host`]: s.host, [`servers[${i}].privateKeyPath`]: s.keyPath, [`servers[${i}].hostKey`]: s.hostKey,
    }));
    Object.assign(settings, { "loadBalancer.host": lb.host, "loadBalancer.privateKeyPath": lb.keyPath, "loadBalancer.hostKey": lb.hostKey });
    for (const [k, v] of Object.entries(settings)) stack.setConfig(k, v);
    stack.setConfig("secrets.SECRET_KEY", "edge-secret", { secret: true });
    stack.setConfig("secrets.DATABASE_URL", "postgresql://edgeapp:pw@10.213.0.240/edgeapp", { secret: true });
  });
  after(() => {
    stack?.remove();
    fs.rmSync(path.dirname(appDir), { recursive: true, force: true });
  });

  it("one up deploys both hosts behind the balancer", async () => {
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      first up: ${Math.round((Date.now() - t0) / 1000)} s`);
    await waitBothUp();
  });

  it("fdeploy status shows every host and the balancer's view (a drained host: DRAIN); --host picks one; exec needs one", async () => {
    const out = stack.outputs();
    const st = status();
    assert.deepStrictEqual(st.hosts.map((h: any) => [h.index, h.host, h.release]), [[1, app1.host, out.releaseId], [2, app2.host, out.releaseId]]);
    assert.strictEqual(st.balancer.host, lb.host);
    lbAgent("lb-drain", { HOST: app2.host, WAIT: "0" });
    try {
      assert.deepStrictEqual(balancerView(), { [app1.host]: "UP", [app2.host]: "DRAIN" });
      const human = fdeploy("status");
      assert.strictEqual(human.status, 0, human.output);
      assert.match(human.stdout, new RegExp(`^host 2  ${app2.host.replace(/\./g, "\\.")}\n  live release  ${out.releaseId}`, "m"));
      assert.match(human.stdout, new RegExp(`^balancer      ${lb.host.replace(/\./g, "\\.")}\n  ${app1.host.replace(/\./g, "\\.")} +UP\n  ${app2.host.replace(/\./g, "\\.")} +DRAIN`, "m"));
    } finally {
      lbAgent("lb-ready", { HOST: app2.host, WAIT_UP: "0" });
    }
    await waitBothUp();
    const one = fdeploy("status", "--json", "--host", "2");
    assert.strictEqual(one.status, 0, one.output);
    assert.strictEqual(JSON.parse(one.stdout).host, app2.host);
    // a command that acts on one host: the choices without --host; each host by index or address
    const none = fdeploy("exec", "--", "hostname");
    assert.strictEqual(none.status, 2, none.output);
    assert.match(none.stderr, new RegExp(`--host: fdeploy exec acts on one server and app ${APP} runs on 2: 1 ${app1.host.replace(/\./g, "\\.")}, 2 ${app2.host.replace(/\./g, "\\.")}`));
    assert.strictEqual(fdeploy("exec", "--host", "2", "--", "hostname").stdout.trim(), "fe-app2");
    assert.strictEqual(fdeploy("exec", "--host", app1.host, "--", "hostname").stdout.trim(), "fe-app1");
    const logs = fdeploy("logs", "--host", "1", "-n", "5");
    assert.strictEqual(logs.status, 0, logs.output);
    const releases = fdeploy("releases", "--json");
    assert.strictEqual(releases.status, 0, releases.output);
    assert.deepStrictEqual(Object.keys(JSON.parse(releases.stdout)), [app1.host, app2.host]);
  });

  it("maintenance on a fleet: the balancer answers 503 with the page for every host, a deploy keeps it, the hosts serve; off serves again", async () => {
    const on = fdeploy("maintenance", "on", "--message", "Back at noon");
    assert.strictEqual(on.status, 0, on.output);
    const through = async () => { const r = await get(`http://${lb.host}/`); return [r.status, r.text] as const; };
    for (let i = 0; i < 4; i++) {   // round robin: both hosts' turns
      const [code, text] = await through();
      assert.strictEqual(code, 503);
      assert.match(text, /Back at noon/);
    }
    // one place: the hosts are not in maintenance and serve directly (their checks pass: still UP at the balancer)
    assert.strictEqual((await get(`http://${app1.host}/`)).status, 200);
    const st = status();
    assert.strictEqual(st.balancer.maintenance.on, true);
    assert.ok(st.hosts.every((h: any) => h.maintenance.on === false));
    assert.deepStrictEqual(balancerView(), { [app1.host]: "UP", [app2.host]: "UP" });
    // a code deploy during maintenance rolls (its checks go to the hosts) and the page stays
    editApp((s) => s.replace('"hello"', '"hello from the edge"'));
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await get(`http://${app2.host}/`)).json().greeting, "hello from the edge");
    assert.strictEqual((await through())[0], 503, "the deploy kept maintenance mode");
    const off = fdeploy("maintenance", "off");
    assert.strictEqual(off.status, 0, off.output);
    for (let i = 0; i < 4; i++) assert.strictEqual((await get(`http://${lb.host}/`)).json().greeting, "hello from the edge");
    assert.strictEqual(status().balancer.maintenance.on, false);
  });

  it("HTTPS at the balancer with your own certificate: HAProxy terminates TLS, HTTP redirects, the hosts stay HTTP; a second up changes nothing", async () => {
    const dir = tempDir("fdeploy-e2e-edge-cert-");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
      "-subj", "/CN=flask-deploy e2e balancer certificate", "-addext", `subjectAltName=DNS:${NAME}`,
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
    const cert = fs.readFileSync(path.join(dir, "cert.pem"), "utf8"), key = fs.readFileSync(path.join(dir, "key.pem"), "utf8");
    fs.rmSync(dir, { recursive: true, force: true });
    stack.setConfig("serverName", NAME);
    stack.setConfig("tls.mode", "custom");
    stack.setConfig("tls.certificate", cert);
    stack.setConfig("tls.privateKey", key, { secret: true });
    stack.setConfig("tls.hstsMaxAgeSeconds", "600");
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      up with HTTPS at the balancer: ${Math.round((Date.now() - t0) / 1000)} s`);
    await waitBothUp();
    const served = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const a = await getHttps(lb.host, NAME, cert, "/");
      assert.strictEqual(a.status, 200, a.body);
      assert.strictEqual(a.issuer, "flask-deploy e2e balancer certificate");
      assert.strictEqual(a.hsts, "max-age=600");
      served.add(JSON.parse(a.body).host);
    }
    assert.deepStrictEqual([...served].sort(), ["fe-app1", "fe-app2"], "both hosts behind HTTPS");
    const plain = await getHttp(lb.host, NAME, "/x?y=1");
    assert.strictEqual(plain.status, 301);
    assert.strictEqual(plain.location, `https://${NAME}/x?y=1`);
    // the key: root-only on the balancer, in no output or state; the hosts have no certificate and serve HTTP
    assert.strictEqual(lb.ssh(`stat -c '%a %U' /etc/fdeploy/haproxy/certs/${APP}.pem /etc/fdeploy/haproxy/certs`).trim(), "600 root\n700 root");
    const keyBody = key.split("\n")[1];
    assert.ok(!r.output.includes(keyBody) && !stack.stateText().includes(keyBody), "the private key appeared in output or state");
    assert.strictEqual(app1.trySsh(`test -e /etc/fdeploy/${APP}/tls`).status, 1);
    assert.strictEqual((await getHttp(app2.host, NAME, "/health")).status, 200);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), []);
    tlsCa = cert;
  });

  it("behind HTTPS at the balancer the app sees https and the client's address; a client at a host directly cannot claim either", async () => {
    const forged = { "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9" };
    // directly at a host (the fixture app: ProxyFix, one proxy): its own scheme and address, the forged headers not believed
    const d = await getHttp(app1.host, NAME, "/whoami", forged);
    assert.strictEqual(d.status, 200, d.body);
    const direct = JSON.parse(d.body);
    assert.strictEqual(direct.scheme, "http", "a client at a host directly claimed https");
    assert.strictEqual(direct.url, `http://${NAME}/whoami`);
    assert.notStrictEqual(direct.client, "203.0.113.9", "a client at a host directly forged its address");
    const me = direct.client;   // this machine, as the servers see it
    assert.ok(me !== lb.host && me !== app1.host, me);
    // through the balancer over HTTPS (both hosts' turns, then with forged headers): https URLs and this machine's address
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const a = await getHttps(lb.host, NAME, tlsCa, "/whoami", i >= 2 ? forged : {});
      assert.strictEqual(a.status, 200, a.body);
      const w = JSON.parse(a.body);
      assert.deepStrictEqual([w.scheme, w.url, w.client], ["https", `https://${NAME}/whoami`, me], a.body);
      seen.add(w.host);
    }
    assert.deepStrictEqual([...seen].sort(), ["fe-app1", "fe-app2"]);
  });

  it("destroy takes the app and its maintenance page off the balancer", () => {
    fdeploy("maintenance", "on");
    const r = stack.run(["destroy", "--yes", "--skip-preview"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(lb.trySsh(`ls /etc/fdeploy/haproxy/ | grep ${APP}`).stdout, "");
  });
});
