// The balancer's edge (README "Scale out"): fdeploy on a fleet — status shows every host and the balancer's
// view (UP/DRAIN from HAProxy's runtime API), --host picks one host, a command that needs one names the
// choices —, maintenance mode at the balancer (one 503 page for every host, kept by a deploy, while the
// hosts themselves keep serving) and HTTPS at the balancer with the stack's own certificate, behind which the app
// sees https and the client's address (a client at a host directly cannot claim either), then tls.mode acme at the
// balancer against pebble (certbot there, HTTP-01 through HAProxy; the cases after it run on that certificate), and an app server
// powered off mid-deploy under a read loop through the balancer: HAProxy routes around it, the up fails
// naming it, the first host goes back, and once the server is back (its disk kept) the next up converges.
// Membership (issue 32): a host drained by hand stays drained across the reloads of another stack's part and
// of maintenance; a server moved to another place in `servers` is refused at preview; the last server removed
// in one up (only its resources deleted; the balancer drains it before its app stops: 0 failed reads; the
// outputs drop it; a second up changes nothing); then the balancer moved to that freed server: the app's part
// leaves the old balancer, another app's part stays there (servers fe-app1, fe-app2, fe-lb: octets 233-235).
// Time with the ACME case: 11 min 10 s at load 9-13 (the ACME case 43 s, its up 22 s; the balancer moved 62 s, an issuance in it).
// Before it: 9 min 9 s warm at load 2 rising to 11 (3 servers, 10 ups, 2 previews, 1 destroy): the membership cases 3 min 4 s of it
// (drained across reloads 36 s, removing a server 88 s, the balancer moved 60 s); before them 4.5-6 min at load ~6
// (4 min 11 s before the hard-stop case, which takes 111-137 s); the forwarded-scheme case well under 1 s.
import * as assert from "assert";
import { execFile, execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import { tempDir } from "../tmpdir";
import { startServer, stopServer, TestServer } from "../servers";
import { get } from "./app-copy";
import { changed, planned, PROJECT_DIR, RunResult, TestStack } from "./pulumi";
import { killHard, link, SERVERS, withKeptDisk } from "./server-loss";
import { Pebble, startPebble } from "../servers/pebble";

const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/fleet-app");
const APP = "edgeapp";
const NAME = "edge.fdeploy.test";

/** GET P over HTTPS from HOST with SNI and Host NAME (and HEADERS), trusting CA; the certificate's issuer and the HSTS header. */
function getHttps(host: string, name: string, ca: string, p: string, headers: Record<string, string> = {}):
  Promise<{ status: number; body: string; issuer: string; serial: string; san: string; hsts?: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: 443, path: p, servername: name, headers: { ...headers, Host: name }, ca, agent: false, timeout: 10000 }, (res) => {
      const cert = (res.socket as import("tls").TLSSocket).getPeerCertificate();
      const issuer = String(cert.issuer?.CN ?? ""), serial = cert.serialNumber, san = cert.subjectaltname ?? "";
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, issuer, serial, san, hsts: res.headers["strict-transport-security"] as string | undefined }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

interface Read { at: number; ms: number; ok: boolean; host?: string; release?: string; error?: string }

/** GETs of / over HTTPS through the balancer LB (2 at a time, a new connection each, a 10 s timeout) until stopped. */
function startReads(lb: string, ca: string) {
  const reads: Read[] = [];
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const at = Date.now();
      try {
        const a = await getHttps(lb, NAME, ca, "/");
        const j = a.status === 200 ? JSON.parse(a.body) : {};
        reads.push({ at, ms: Date.now() - at, ok: a.status === 200, host: j.host, release: j.release, error: a.status === 200 ? undefined : `HTTP ${a.status}` });
      } catch (e) {
        reads.push({ at, ms: Date.now() - at, ok: false, error: (e as Error).message });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const workers = [worker(), worker()];
  return { reads, async stop() { stopped = true; await Promise.all(workers); return reads; } };
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
  let tlsCa = "";   // the balancer's certificate, once HTTPS is on (from the ACME case on: pebble's root)
  let pebble: Pebble | undefined;   // the ACME case's, serving the cases after it (the balancer moved: issued again)
  const caRel = path.join(".e2e", "fleet-edge", "acme-api-ca.pem");
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
    spawnSync("bash", [SERVERS, "rm-disk", "fe-app2"]);
    app2 = withKeptDisk(() => startServer("fe-app2", 234));   // its disk outlives the hard stop below
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
    pebble?.stop();
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

  it("a host drained by hand stays drained when another stack's part or fdeploy maintenance reloads the balancer", async () => {
    // HAProxy's worker answering the runtime API: a reload starts another
    const worker = () => lb.ssh(`python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); ` +
      `s.sendall(b'show info\\n'); print(s.recv(65536).decode())"`).match(/^Pid: (\d+)$/m)![1];
    lbAgent("lb-drain", { HOST: app2.host, WAIT: "0" });
    try {
      const reloads: string[] = [worker()];
      const reloaded = (what: string) => {
        const pid = worker();
        assert.ok(!reloads.includes(pid), `${what} did not reload HAProxy (worker ${pid})`);
        reloads.push(pid);
        assert.deepStrictEqual(balancerView(), { [app1.host]: "UP", [app2.host]: "DRAIN" }, `after ${what}`);
      };
      // another stack's up on this balancer: its lb-configure (the agent's own verb, as that up runs it) adds its part, a delete takes it off
      const other = { APP: "edgeother", SERVER_NAME: "other.fdeploy.test", HEALTH_PATH: "/health", HOSTS: app1.host, DRAIN_SECONDS: "0" };
      lbAgent("lb-configure", other);
      reloaded("another stack's lb-configure");
      for (const mode of ["on", "off"]) {
        const m = fdeploy("maintenance", mode);
        assert.strictEqual(m.status, 0, m.output);
        reloaded(`fdeploy maintenance ${mode}`);
      }
      lbAgent("lb-delete", { APP: "edgeother" });
      reloaded("another stack's part deleted");
      assert.doesNotMatch(lb.ssh("cat /etc/haproxy/haproxy.cfg"), /edgeother/);
    } finally {
      lbAgent("lb-ready", { HOST: app2.host, WAIT_UP: "0" });
    }
    await waitBothUp();
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

  it("tls.mode acme at the balancer: certbot there gets pebble's certificate through HAProxy (0 failed reads during the up); a re-run issues nothing; a renewal is served", async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // pebble on its own ports (this suite's octet range: 14230…), so the https suite's may run beside it
    pebble = await startPebble({ port: 14230 });
    const root = await pebble.root();
    await pebble.addName(NAME, lb.host);
    fs.writeFileSync(path.join(PROJECT_DIR, caRel), pebble.apiCaPem);
    stack.setConfig("tls.mode", "acme");
    for (const k of ["tls.certificate", "tls.privateKey"]) stack.mustRun(["config", "rm", "--path", k]);
    stack.setConfig("tls.acmeServer", pebble.directory);
    stack.setConfig("tls.caBundle", caRel);
    stack.setConfig("tls.email", "ops at fdeploy");   // bad: refused at preview, naming the setting
    const bad = stack.preview();
    assert.notStrictEqual(bad.status, 0, bad.output);
    assert.match(bad.output, /flask-deploy:tls\.email: expected an e-mail address/);
    stack.setConfig("tls.email", "ops@fdeploy.test");
    // custom -> acme under a read loop over HTTPS through the balancer (it trusts either certificate)
    const reads = startReads(lb.host, tlsCa + root);
    await sleep(1000);
    const t0 = Date.now();
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const took = (Date.now() - t0) / 1000;
    await sleep(1000);
    const all = await reads.stop();
    assert.strictEqual(r.status, 0, r.output + pebble.log().slice(-3000));
    assert.match(r.output, /requesting a certificate for edge\.fdeploy\.test .*HTTP-01 through HAProxy/);
    const failed = all.filter((x) => !x.ok);
    console.log(`      custom -> acme at the balancer: ${took.toFixed(0)} s; reads ${all.length}, failed ${failed.length}`);
    assert.deepStrictEqual(failed, []);
    const a = await getHttps(lb.host, NAME, root, "/");
    assert.strictEqual(a.status, 200, a.body);
    assert.match(a.issuer, /^Pebble Intermediate CA/);
    assert.strictEqual(a.san, `DNS:${NAME}`);
    assert.strictEqual(a.hsts, "max-age=600");
    assert.strictEqual((await getHttp(lb.host, NAME, "/x?y=1")).location, `https://${NAME}/x?y=1`);
    // the challenge path of the name (with a port or not) goes to certbot's port (not listening now: 503), not to the redirect
    for (const host of [NAME, `${NAME}:80`]) assert.strictEqual((await getHttp(lb.host, host, "/.well-known/acme-challenge/x")).status, 503, host);
    assert.strictEqual(lb.ssh(`stat -c '%a %U' /etc/fdeploy/haproxy/certs/${APP}.pem`).trim(), "600 root");
    const renewal = lb.ssh(`cat /etc/letsencrypt/renewal/fdeploy-${APP}.conf`);   // how certbot.timer validates again
    assert.match(renewal, /^authenticator = standalone$/m);
    assert.match(renewal, /^http01_port = 8402$/m);
    assert.strictEqual(app1.trySsh("test -e /etc/letsencrypt/live").status, 1, "an app host got a certificate");
    assert.strictEqual(stack.outputs().url, `https://${NAME}/`);
    // a re-run: nothing changes, nothing issued
    const files = lb.ssh(`ls /etc/letsencrypt/archive/fdeploy-${APP}/`);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), []);
    assert.strictEqual(lb.ssh(`ls /etc/letsencrypt/archive/fdeploy-${APP}/`), files, "a certificate was issued again");
    // renewal as certbot.timer runs it (pebble's 20 days are inside certbot's 30-day window): through HAProxy again,
    // then the deploy hook rebuilds the PEM and reloads HAProxy: the new serial is served
    const renew = lb.trySsh("systemctl start certbot.service; systemctl show -p Result --value certbot.service; journalctl -u certbot.service -n 20 --no-pager -o cat");
    assert.match(renew.stdout, /^success/m, renew.stdout + renew.stderr);
    const hex = (serial: string) => serial.replace(/^serial=/, "").replace(/^0+/, "").toUpperCase();   // openssl pads, Node does not
    const live = hex(lb.ssh(`openssl x509 -noout -serial -in /etc/letsencrypt/live/fdeploy-${APP}/cert.pem`).trim());
    let served = "";
    for (const end = Date.now() + 20000; Date.now() < end; await sleep(250)) {   // the reload's new worker takes the new connections
      served = hex((await getHttps(lb.host, NAME, root, "/")).serial);
      if (served === live) break;
    }
    assert.notStrictEqual(live, hex(a.serial), "certbot did not renew");
    assert.strictEqual(served, live, "HAProxy does not serve the renewed certificate");
    tlsCa = root;
  });

  it("an app server stopped hard mid-deploy: the balancer routes around it, the up fails naming it, the first host goes back; back on, the next up converges", async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const before = stack.outputs();
    const old = before.releaseId as string;
    // the balancer's view of h2 from its runtime API, asked without blocking the read loop: when it first says DOWN
    const lbDir = lb.ssh(`ls -td /root/.fdeploy/${APP}/scripts-* | head -1`).trim();
    const h2View = () => new Promise<string>((resolve) => execFile("ssh", ["-i", lb.keyPath, "-o", `UserKnownHostsFile=${lb.knownHostsPath}`,
      "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", `root@${lb.host}`, `python3 -I -B ${lbDir}/agent lb-status`],
      { encoding: "utf8", timeout: 10000 }, (_e, out) => {
        try { resolve(JSON.parse(String(out).trim().split("\n").pop()!).servers.h2.status); } catch { resolve(""); }
      }).stdin!.end(JSON.stringify({ APP })));
    editApp((s) => s.replace('"hello from the edge"', '"hello after the stop"'));
    const reads = startReads(lb.host, tlsCa);
    await sleep(1000);
    const t0 = Date.now();
    const up = stack.runAsync(["up", "--yes", "--skip-preview"]);
    // the trigger: the first host (sorted) serves the new release, so the rollout is on it or its check, before the second
    let stoppedAt = 0;
    while (!stoppedAt) {
      const r = await getHttp(app1.host, NAME, "/").catch(() => undefined);
      if (r?.status === 200 && JSON.parse(r.body).greeting === "hello after the stop") {
        link("fe-app2", "down");   // power off: off the network first (nothing it sends gets out), then every process at once
        killHard("fe-app2");
        stoppedAt = Date.now();
      } else await sleep(50);
      assert.ok(Date.now() - t0 < 300000, "the first host never served the new release");
    }
    let downAt = 0;
    const watch = (async () => { while (!downAt && Date.now() - stoppedAt < 60000) { if ((await h2View()).startsWith("DOWN")) downAt = Date.now(); else await sleep(200); } })();
    const r = await up;
    const failedAfter = (Date.now() - stoppedAt) / 1000;
    await watch;
    await sleep(2000);   // reads after the up: still served
    const all = await reads.stop();
    stopServer("fe-app2");   // its folder and network namespace (the disk stays)

    assert.notStrictEqual(r.status, 0, r.output);
    const host2 = app2.host.replace(/\./g, "\\.");
    assert.match(r.output, new RegExp(`stopped at host ${host2}: .*did not answer over SSH`), r.output);
    assert.match(r.output, new RegExp(`went back to their previous release: ${app1.host.replace(/\./g, "\\.")}; never switched: none`), r.output);
    // bounded: the drain (rollout.drainSeconds 5), SSH's 15 s connect, host 1's way back, a lease renewal's 15 s (28-41 s measured)
    assert.ok(failedAfter < 90, `the up failed ${failedAfter.toFixed(1)} s after the stop`);
    // the first host serves the previous release again; the stack output says so for both
    const first = JSON.parse((await getHttp(app1.host, NAME, "/")).body);
    assert.deepStrictEqual([first.greeting, first.release], ["hello from the edge", old]);
    assert.deepStrictEqual(stack.outputs().hosts, { [app1.host]: old, [app2.host]: old });
    // the balancer: h2 DOWN, every read after that served by fe-app1 (the previous release once it went back)
    assert.ok(downAt, "the balancer never marked the stopped host DOWN");
    assert.strictEqual(await h2View(), "DOWN");
    const failed = all.filter((x) => !x.ok);
    const late = failed.filter((x) => x.at >= downAt);
    console.log(`      hard stop: the up failed ${failedAfter.toFixed(1)} s after it (${((Date.now() - t0) / 1000).toFixed(0)} s in all); h2 DOWN at the balancer ` +
      `${((downAt - stoppedAt) / 1000).toFixed(1)} s after it; reads ${all.length}, failed ${failed.length} ` +
      `(${failed.map((x) => `${x.error} sent ${((x.at - stoppedAt) / 1000).toFixed(1)} s after the stop`).join(", ") || "none"}); ` +
      `slowest read ${Math.max(...all.map((x) => x.ms))} ms\n      ${r.output.split("\n").filter((l) => /^\s*(error: the rollout|went back to their)/.test(l)).map((l) => l.trim()).join("\n      ")}`);
    assert.deepStrictEqual(late, [], "reads sent after the balancer marked the host DOWN failed");
    // a request in flight on the host when it died is lost with it (at most one per reader); none sent before the stop or after DOWN
    assert.ok(failed.length <= 2 && failed.every((x) => x.at >= stoppedAt - 1000), JSON.stringify(failed));
    assert.ok(all.filter((x) => x.at > downAt).every((x) => x.host === "fe-app1"));

    // the server comes back with its disk: the next up puts the new release on every host, 0 failed reads
    app2 = withKeptDisk(() => startServer("fe-app2", 234));
    await waitBothUp();
    const again = startReads(lb.host, tlsCa);
    const t1 = Date.now();
    const r2 = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const took = (Date.now() - t1) / 1000;
    const after = await again.stop();
    assert.strictEqual(r2.status, 0, r2.output);
    const now = stack.outputs();
    assert.notStrictEqual(now.releaseId, old);
    assert.deepStrictEqual(now.hosts, { [app1.host]: now.releaseId, [app2.host]: now.releaseId });
    for (const h of [app1, app2]) assert.strictEqual(JSON.parse((await getHttp(h.host, NAME, "/")).body).greeting, "hello after the stop");
    console.log(`      the next up with the server back: ${took.toFixed(0)} s, reads ${after.length}, failed ${after.filter((x) => !x.ok).length}`);
    assert.deepStrictEqual(after.filter((x) => !x.ok), []);
  });

  it("removing a server: one up drains it at the balancer, then stops its app, 0 failed reads; the outputs drop it; a second up changes nothing; a move is refused", async () => {
    const live = stack.outputs().releaseId as string;
    const setServers = (list: TestServer[]) => {
      stack.mustRun(["config", "rm", "--path", "servers"]);
      list.forEach((s, i) => {
        for (const [k, v] of Object.entries({ host: s.host, privateKeyPath: s.keyPath, hostKey: s.hostKey })) stack.setConfig(`servers[${i}].${k}`, v);
      });
    };
    // servers[0] removed: fe-app2 would move to servers[0] (the first place's resources, the -h2 ones deleted on it): refused
    setServers([app2]);
    const moved = stack.preview();
    assert.notStrictEqual(moved.status, 0, moved.output);
    assert.match(moved.output, new RegExp(`flask-deploy:servers: ${app2.host.replace(/\./g, "\\.")} moved from servers\\[1\\] to servers\\[0\\]; expected each server to keep its place`));
    // the last server removed: the preview deletes its resources only, replaces nothing
    setServers([app1]);
    const p = stack.run(["preview", "--diff"]);
    assert.strictEqual(p.status, 0, p.output);
    const deleted = planned(p.output, /delete/);
    assert.ok(deleted.length > 5 && deleted.every((d) => / app-[\w-]*-h2\b[\w.-]* delete$/.test(d)), deleted.join("\n"));
    assert.deepStrictEqual(planned(p.output, /replace/), []);
    const reads = startReads(lb.host, tlsCa);
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const took = (Date.now() - t0) / 1000;
    await new Promise((res) => setTimeout(res, 1000));
    const all = await reads.stop();
    assert.strictEqual(r.status, 0, r.output);
    const failed = all.filter((x) => !x.ok);
    console.log(`      a server removed: ${took.toFixed(0)} s; reads ${all.length} (fe-app2 ${all.filter((x) => x.host === "fe-app2").length}), failed ${failed.length}`);
    assert.deepStrictEqual(failed, []);
    assert.match(r.output, new RegExp(`app_edgeapp/h2 \\(${app2.host.replace(/\./g, "\\.")}\\) drained before it leaves`));
    // the balancer's change (drain, then the reload without it) finished before the first of its deletes began
    const configured = r.output.search(new RegExp(`app-balancer-configure-${lb.host.replace(/\./g, "\\.")} updated`));
    const firstDelete = r.output.search(/ app-[\w-]*-h2\b[\w.-]* delet(ing|ed)/);
    assert.ok(configured > 0 && firstDelete > configured, `balancer updated at ${configured}, first delete at ${firstDelete}`);
    // the balancer without it; its app stopped and disabled, its site gone; its data and app user stay
    assert.doesNotMatch(lb.ssh("cat /etc/haproxy/haproxy.cfg"), new RegExp(app2.host.replace(/\./g, "\\.")));
    assert.strictEqual(app2.ssh(`systemctl list-units --all --plain --no-legend 'fdeploy-${APP}@*' | grep -v ' inactive ' || true`).trim(), "");
    assert.strictEqual(app2.ssh(`ls /etc/systemd/system | grep -c 'fdeploy-${APP}@' || true`).trim(), "0");
    assert.strictEqual(app2.trySsh(`ls /etc/nginx/sites-enabled | grep ${APP}`).stdout, "");
    assert.strictEqual(app2.trySsh(`test -d /srv/${APP}/shared && id -u ${APP}`).status, 0, "its data and app user stay");
    const out = stack.outputs();
    assert.deepStrictEqual(out.hosts, { [app1.host]: live });
    assert.strictEqual(out.server, `root@${app1.host}:22`);
    assert.deepStrictEqual(Object.keys(status().balancer.hosts), [app1.host]);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), []);
  });

  it("an app leaving its balancer (loadBalancer.host changed): its part goes from the old one, another app's stays there", async () => {
    // another stack's app on the old balancer (its lb-configure, as that stack's up runs it)
    lbAgent("lb-configure", { APP: "edgeother", SERVER_NAME: "other.fdeploy.test", HEALTH_PATH: "/health", HOSTS: app1.host, DRAIN_SECONDS: "0" });
    // the new balancer: fe-app2, out of servers since the case above (its nginx stopped: HAProxy takes port 80)
    app2.ssh("systemctl disable --now nginx");
    await pebble!.removeName(NAME);   // tls.mode acme: the new balancer gets its certificate through its own HAProxy
    await pebble!.addName(NAME, app2.host);
    for (const [k, v] of Object.entries({ host: app2.host, privateKeyPath: app2.keyPath, hostKey: app2.hostKey })) stack.setConfig(`loadBalancer.${k}`, v);
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      the balancer moved: ${Math.round((Date.now() - t0) / 1000)} s`);
    let a = await getHttps(app2.host, NAME, tlsCa, "/").catch((e) => ({ status: 0, body: String(e) }));
    for (let i = 0; i < 20 && a.status !== 200; i++) {   // the new HAProxy's first checks of the host
      await new Promise((res) => setTimeout(res, 500));
      a = await getHttps(app2.host, NAME, tlsCa, "/").catch((e) => ({ status: 0, body: String(e) }));
    }
    assert.strictEqual(a.status, 200, a.body);
    assert.strictEqual(JSON.parse(a.body).host, "fe-app1");
    // the old balancer: this app's backend, certificate and files gone; the other app's part served on
    const old = lb.ssh("cat /etc/haproxy/haproxy.cfg");
    assert.doesNotMatch(old, /app_edgeapp/);
    assert.match(old, /backend app_edgeother\n/);
    assert.strictEqual(lb.trySsh(`ls -R /etc/fdeploy/haproxy/ | grep ${APP}`).stdout, "");
    assert.strictEqual(lb.trySsh(`test -e /etc/letsencrypt/renewal/fdeploy-${APP}.conf`).status, 1, "the old balancer renews the certificate");
    assert.strictEqual(lb.ssh("systemctl is-active haproxy").trim(), "active");
    lbAgent("lb-delete", { APP: "edgeother" });
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), []);
  });

  it("destroy takes the app and its maintenance page off the balancer", () => {
    fdeploy("maintenance", "on");
    const r = stack.run(["destroy", "--yes", "--skip-preview"]);
    assert.strictEqual(r.status, 0, r.output);
    for (const b of [lb, app2]) assert.strictEqual(b.trySsh(`ls /etc/fdeploy/haproxy/ | grep ${APP}`).stdout, "");
  });
});
