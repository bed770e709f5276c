// Issue #12 "HTTPS": certificates issued and renewed automatically, against a real ACME server.
// pebble (Let's Encrypt's test CA, built by toolchain/pebble.sh) runs on the host side of the test
// bridge; its validation authority resolves the test names through pebble-challtestsrv and
// validates HTTP-01 for real against the test server's nginx on port 80. The server trusts the
// ACME API's private CA through tls.caBundle only (certbot's requests), never system-wide.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { Pebble, startPebble } from "../servers/pebble";
import { copyApp, copyMigrations } from "./app-copy";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";
import { tempDir } from "../tmpdir";

const NAME = "https.fdeploy.test";
const NAME2 = "www.https.fdeploy.test";
const NAME3 = "https2.fdeploy.test"; // the second server's (an existing HTTP stack moving to HTTPS)
const UNRESOLVED = "nx.https.fdeploy.test"; // no DNS record: issuance must fail for it
const LIVE = "/etc/letsencrypt/live/fdeploy-flaskapp";

interface TlsAnswer { status: number; body: string; serial: string; issuer: string; san: string; protocol: string; location?: string }

/** GET PATH from the server over HTTPS as a browser would for NAME, verifying the chain against CA (pebble's root). */
function getHttps(server: TestServer, name: string, ca: string, p = "/health"): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: server.host, port: 443, path: p, servername: name, headers: { Host: name }, ca, agent: false, timeout: 10000 }, (res) => {
      const sock = res.socket as import("tls").TLSSocket;
      const cert = sock.getPeerCertificate();
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({
        status: res.statusCode ?? 0, body, serial: cert.serialNumber, issuer: String(cert.issuer?.CN ?? ""),
        san: cert.subjectaltname ?? "", protocol: sock.getProtocol() ?? "",
      }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

/** GET PATH over plain HTTP with Host NAME; redirects are not followed. */
function getHttp(server: TestServer, name: string, p: string): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: server.host, port: 80, path: p, headers: { Host: name }, agent: false, timeout: 10000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

describe("https: certificates from a real ACME server (pebble)", function () {
  this.timeout(900000);
  let pebble: Pebble;
  let root: string;
  let first: TestServer;
  const caRel = path.join(".e2e", "https-acme-api-ca.pem");

  before(async () => {
    // pebble listens on the test bridge: the first server brings it up (servers stay up until the
    // root hook stops them, so the bridge does too)
    first = startServer("https", 121);
    pebble = await startPebble();
    root = await pebble.root();
    fs.mkdirSync(path.join(PROJECT_DIR, ".e2e"), { recursive: true });
    fs.writeFileSync(path.join(PROJECT_DIR, caRel), pebble.apiCaPem);
  });
  after(() => {
    if (pebble && process.env.FDEPLOY_E2E_PEBBLE_LOG) fs.writeFileSync(process.env.FDEPLOY_E2E_PEBBLE_LOG, pebble.log());
    pebble?.stop();
  });

describe("a new stack with HTTPS, renewed by certbot's timer", function () {
  let server: TestServer;
  let stack: TestStack;

  before(async () => {
    server = first;
    await pebble.addName(NAME, server.host);
    await pebble.addName(NAME2, server.host);
    const app = copyApp("https");
    const migrations = copyMigrations("https");
    stack = new TestStack("https");
    stack.target(server, {
      appDir: app.rel, migrationsDir: migrations.rel, healthTimeoutSeconds: "60",
      "tls.mode": "acme", "tls.acmeServer": pebble.directory, "tls.caBundle": caRel, "tls.email": "ops@fdeploy.test",
      "tls.hstsMaxAgeSeconds": "300",
    });
    stack.setConfig("secrets.SECRET_KEY", "https-test-secret", { secret: true });
  });
  after(() => stack?.remove());

  it("TLS with serverName '_' is refused at preview, naming the key, before anything reaches the server", () => {
    const r = stack.preview();
    assert.notStrictEqual(r.status, 0, r.output);
    assert.match(r.output, /flask-deploy:serverName: tls\.mode acme needs the site's DNS names/);
    stack.setConfig("serverName", "10.213.0.121");
    const ip = stack.preview();
    assert.notStrictEqual(ip.status, 0, ip.output);
    assert.match(ip.output, /flask-deploy:serverName: '10\.213\.0\.121' is an IP address/);
    assert.strictEqual(server.trySsh("test -e /srv/flaskapp || test -e /root/.fdeploy").status, 1, "something reached the server");
    stack.setConfig("serverName", NAME);
  });

  it("first up: a certificate issued by pebble over HTTP-01 for the name, served over HTTPS; HTTP redirects", async () => {
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output + pebble.log().slice(-3000));
    console.log(`      first up with issuance: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.match(r.output, /tls-certificate\s+created/);
    const a = await getHttps(server, NAME, root);
    assert.strictEqual(a.status, 200, a.body);
    assert.match(a.issuer, /^Pebble Intermediate CA/);
    assert.match(a.san, new RegExp(`DNS:${NAME.replace(/\./g, "\\.")}`));
    assert.match(a.protocol, /^TLSv1\.[23]$/);
    assert.strictEqual(JSON.parse(a.body).status, "ok");
    const plain = await getHttp(server, NAME, "/health?x=1");
    assert.strictEqual(plain.status, 301);
    assert.strictEqual(plain.location, `https://${NAME}/health?x=1`);
    assert.strictEqual(stack.outputs().url, `https://${NAME}/`);
    assert.strictEqual(stack.outputs().certificate.state, "valid");
    // HSTS as configured; TLS 1.0/1.1 refused
    const site = server.ssh("cat /etc/nginx/sites-available/fdeploy-flaskapp.conf");
    assert.match(site, /Strict-Transport-Security "max-age=300"/);
    // (the client allows every protocol at security level 0, so a refusal is the server's; TLS 1.2
    // from the same client is the control that the probe can succeed)
    const handshake = (proto: string) => server.trySsh(`openssl s_client -brief -connect 127.0.0.1:443 -servername ${NAME} -${proto} -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1`);
    const tls12 = handshake("tls1_2");
    assert.strictEqual(tls12.status, 0, tls12.stdout);
    assert.match(tls12.stdout, /Protocol version: TLSv1\.2/);
    for (const old of ["tls1", "tls1_1"]) {
      const r = handshake(old);
      assert.notStrictEqual(r.status, 0, `${old} was accepted:\n${r.stdout}`);
      assert.match(r.stdout, /alert protocol version|unsupported protocol/i, `${old} failed for another reason:\n${r.stdout}`);
    }
    // the private CA is certbot's alone: not in the system's trust store (curl's exit 60: the peer's
    // certificate cannot be verified; with the CA given, the same request passes)
    assert.strictEqual(server.trySsh("grep -rl 'e2e ACME API CA' /etc/ssl/certs /usr/local/share/ca-certificates").stdout, "");
    const untrusted = server.trySsh(`curl -sS -o /dev/null ${pebble.directory}`);
    assert.strictEqual(untrusted.status, 60, `the system trusts the private ACME CA, or the request failed otherwise: ${untrusted.stderr}`);
    assert.strictEqual(server.trySsh(`curl -sS -o /dev/null --cacert /etc/fdeploy/flaskapp/acme-ca.pem ${pebble.directory}`).status, 0, "the ACME server is unreachable: the check above proves nothing");
  });

  it("a second up changes nothing and issues nothing", async () => {
    const before = (await getHttps(server, NAME, root)).serial;
    const files = server.ssh("ls /etc/letsencrypt/archive/fdeploy-flaskapp/");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.strictEqual(server.ssh("ls /etc/letsencrypt/archive/fdeploy-flaskapp/"), files, "a certificate was issued again");
    assert.strictEqual((await getHttps(server, NAME, root)).serial, before);
  });

  it("renewal by certbot's own systemd unit (the timer's): nginx serves the new certificate, no request fails", async () => {
    assert.strictEqual(server.ssh("systemctl is-enabled certbot.timer").trim(), "enabled");
    assert.match(server.ssh("systemctl show -p Environment certbot.service"), /REQUESTS_CA_BUNDLE=\/etc\/fdeploy\/acme-ca-bundle\.pem/);
    const before = (await getHttps(server, NAME, root)).serial;
    // pebble issues for 20 days: inside certbot's 30-day window, so `certbot renew` (what the
    // timer starts) renews; each request below is a new TLS connection
    let ok = 0, failed = 0, stop = false;
    const errors: string[] = [];
    const serials = new Set<string>();
    const load = (async () => {
      while (!stop) {
        try {
          const a = await getHttps(server, NAME, root);
          if (a.status === 200) { ok++; serials.add(a.serial); } else { failed++; errors.push(`HTTP ${a.status}`); }
        } catch (e) { failed++; errors.push((e as Error).message); }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    const renew = server.trySsh("systemctl start certbot.service; systemctl show -p Result --value certbot.service; journalctl -u certbot.service -n 20 --no-pager -o cat");
    const secs = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await load;
    assert.strictEqual(renew.status, 0, renew.stderr + renew.stdout);
    assert.match(renew.stdout, /^success/m, renew.stdout);
    const after = await getHttps(server, NAME, root);
    assert.notStrictEqual(after.serial, before, "nginx still serves the old certificate");
    assert.strictEqual(failed, 0, `failed requests during renewal: ${errors.slice(0, 5).join("; ")}`);
    assert.ok(ok > 20, `only ${ok} requests`);
    console.log(`      renewal via certbot.service: ${secs.toFixed(1)} s; ${ok} requests, ${failed} failed; serials seen: ${serials.size}`);
  });

  it("adding a name: preview shows it, up extends the certificate to both names", async () => {
    stack.setConfig("serverName", `${NAME} ${NAME2}`);
    const p = stack.run(["preview", "--diff"]);
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /tls-certificate/);
    assert.ok(p.output.includes(NAME2), "the new name is not in the preview");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output + pebble.log().slice(-3000));
    const a = await getHttps(server, NAME2, root);
    assert.strictEqual(a.status, 200);
    assert.ok(a.san.includes(`DNS:${NAME}`) && a.san.includes(`DNS:${NAME2}`), a.san);
  });

  it("issuance failure (a name that does not resolve) fails the up naming the name; the site keeps its certificate", async () => {
    const before = await getHttps(server, NAME, root);
    stack.setConfig("serverName", `${NAME} ${NAME2} ${UNRESOLVED}`);
    const r = stack.up();
    assert.notStrictEqual(r.status, 0, "the update must fail");
    assert.match(r.output, new RegExp(`no certificate for .*${UNRESOLVED.replace(/\./g, "\\.")}`));
    assert.match(r.output, /Domain: nx\.https\.fdeploy\.test/);
    assert.match(r.output, /www\.https\.fdeploy\.test from https:\S+: nx\.https\.fdeploy\.test \([^)]*resolve/);
    assert.match(r.output, /Detail: .*(DNS|NXDOMAIN|resolve|no valid A)/i);
    assert.match(r.output, /stays in force with the previous certificate/);
    console.log(`      the error:\n${r.output.split("\n").filter((l) => /Domain:|Detail:|no certificate for/.test(l)).map((l) => `        ${l.trim()}`).join("\n")}`);
    const a = await getHttps(server, NAME, root);
    assert.strictEqual(a.status, 200);
    assert.strictEqual(a.serial, before.serial, "the certificate in force changed");
    assert.doesNotMatch(server.ssh("cat /etc/nginx/sites-available/fdeploy-flaskapp.conf"), /nx\.https/);
    // back to the names that work: nothing to issue
    stack.setConfig("serverName", `${NAME} ${NAME2}`);
    const fixed = stack.up();
    assert.strictEqual(fixed.status, 0, fixed.output);
    assert.strictEqual((await getHttps(server, NAME, root)).serial, before.serial);
  });

  it("drift: a certificate deleted by hand shows in preview --refresh; up --refresh issues it again; a plain up reads nothing", async () => {
    const before = (await getHttps(server, NAME, root)).serial;
    server.ssh("certbot delete --non-interactive --cert-name fdeploy-flaskapp");
    const plain = stack.up();
    assert.strictEqual(plain.status, 0, plain.output);
    assert.deepStrictEqual(changed(plain.output), [], "a plain up ran a remote command");
    const preview = stack.run(["preview", "--refresh", "--diff"]);
    assert.strictEqual(preview.status, 0, preview.output);
    assert.match(preview.output, /certificate-state/);
    assert.match(preview.output, /~ certificate/, preview.output);
    const r = stack.run(["up", "--yes", "--skip-preview", "--refresh"]);
    assert.strictEqual(r.status, 0, r.output);
    const a = await getHttps(server, NAME2, root);
    assert.strictEqual(a.status, 200);
    assert.notStrictEqual(a.serial, before, "no new certificate");
    assert.ok(a.san.includes(`DNS:${NAME}`) && a.san.includes(`DNS:${NAME2}`), a.san);
    assert.strictEqual(stack.outputs().certificate.state, "valid");
    const again = stack.run(["preview", "--refresh"]);
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /certificate-state\s+update/, "drift reported after the repair");
  });

  it("tls.mode custom: a certificate of your own (key as a stack secret) replaces the ACME one; back to acme issues again", async () => {
    const dir = tempDir("fdeploy-e2e-own-cert-");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
      "-subj", "/CN=flask-deploy e2e own certificate", "-addext", `subjectAltName=DNS:${NAME},DNS:${NAME2}`,
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
    const cert = fs.readFileSync(path.join(dir, "cert.pem"), "utf8"), key = fs.readFileSync(path.join(dir, "key.pem"), "utf8");
    fs.rmSync(dir, { recursive: true, force: true });
    stack.setConfig("tls.mode", "custom");
    stack.setConfig("tls.certificate", cert);
    stack.setConfig("tls.privateKey", key, { secret: true });
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const a = await getHttps(server, NAME, cert);
    assert.strictEqual(a.status, 200);
    assert.strictEqual(a.issuer, "flask-deploy e2e own certificate");
    assert.strictEqual(server.ssh("stat -c '%a %U' /etc/fdeploy/flaskapp/tls/privkey.pem /etc/fdeploy/flaskapp/tls").trim(), "600 root\n700 root");
    assert.strictEqual(server.trySsh(`test -e ${LIVE}`).status, 1, "the ACME certificate is left");
    const keyBody = key.split("\n")[1];
    assert.ok(!r.output.includes(keyBody) && !stack.stateText().includes(keyBody), "the private key appeared in output or state");
    // back to ACME: HTTPS stays up with the own certificate while pebble validates
    stack.setConfig("tls.mode", "acme");
    stack.mustRun(["config", "rm", "--path", "tls.certificate"]);
    stack.mustRun(["config", "rm", "--path", "tls.privateKey"]);
    const back = stack.up();
    assert.strictEqual(back.status, 0, back.output);
    assert.match((await getHttps(server, NAME, root)).issuer, /^Pebble Intermediate CA/);
    assert.strictEqual(server.trySsh("test -e /etc/fdeploy/flaskapp/tls").status, 1, "the own certificate is left");
  });

  it("tls.mode off: plain HTTP as before, the certificate and certbot's private-CA drop-in are removed", async () => {
    stack.setConfig("tls.mode", "off");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /tls-certificate\s+deleted/);
    const plain = await getHttp(server, NAME, "/health");
    assert.strictEqual(plain.status, 200, plain.body);
    await assert.rejects(getHttps(server, NAME, root));
    assert.strictEqual(server.trySsh(`test -e ${LIVE}`).status, 1, "the certificate is left");
    assert.strictEqual(server.trySsh("test -e /etc/systemd/system/certbot.service.d/fdeploy-acme-ca.conf").status, 1, "the drop-in is left");
    assert.strictEqual(stack.outputs().url, `http://${NAME}/`);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), []);
  });
});

describe("an existing HTTP stack moves to HTTPS; a first issuance that fails leaves it serving HTTP", function () {
  let server: TestServer;
  let stack: TestStack;

  before(() => {
    server = startServer("https2", 122);
    const app = copyApp("https2");
    const migrations = copyMigrations("https2");
    stack = new TestStack("https2");
    stack.target(server, { appDir: app.rel, migrationsDir: migrations.rel, healthTimeoutSeconds: "60", serverName: NAME3 });
    stack.setConfig("secrets.SECRET_KEY", "https2-test-secret", { secret: true });
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
  });
  after(() => stack?.remove());

  it("the name does not resolve yet: the up fails naming it, the site keeps serving HTTP as before", async () => {
    const siteBefore = server.ssh("cat /etc/nginx/sites-available/fdeploy-flaskapp.conf");
    for (const [k, v] of Object.entries({ "tls.mode": "acme", "tls.acmeServer": pebble.directory, "tls.caBundle": caRel })) stack.setConfig(k, v);
    const r = stack.up();
    assert.notStrictEqual(r.status, 0, "the update must fail");
    assert.match(r.output, /Domain: https2\.fdeploy\.test/);
    assert.match(r.output, /no certificate for https2\.fdeploy\.test .*stays in force \(HTTP\)/s);
    const plain = await getHttp(server, NAME3, "/health");
    assert.strictEqual(plain.status, 200, "HTTP no longer serves the app");
    assert.strictEqual(server.ssh("cat /etc/nginx/sites-available/fdeploy-flaskapp.conf"), siteBefore, "the site in force changed");
    await assert.rejects(getHttps(server, NAME3, root));
  });

  it("once the name resolves, the next up issues the certificate and the site switches to HTTPS", async () => {
    await pebble.addName(NAME3, server.host);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const a = await getHttps(server, NAME3, root);
    assert.strictEqual(a.status, 200, a.body);
    assert.match(a.issuer, /^Pebble Intermediate CA/);
    assert.strictEqual((await getHttp(server, NAME3, "/")).status, 301);
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.deepStrictEqual(changed(again.output), [], "a second up changed something");
  });
});
});
