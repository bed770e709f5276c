// A real ACME server for the e2e tests: Let's Encrypt's pebble (built by toolchain/pebble.sh from
// the Go module proxy), with pebble-challtestsrv as the DNS server its validation authority asks.
//   - pebble's ACME API listens on the host side of the test bridge (10.213.0.1:14000), the only
//     host address the test servers reach; its management API (roots) on loopback only.
//   - challtestsrv answers DNS on loopback only; tests add A records for their test names
//     (addName), so pebble resolves e.g. https.fdeploy.test to the test server, then validates
//     HTTP-01 for real against the server's nginx on port 80 (no PEBBLE_VA_ALWAYS_VALID).
//   - The ACME API's own TLS certificate comes from a throw-away CA made here (openssl), with the
//     bridge address in its SAN: that CA's PEM is what a stack sets as tls.caBundle.
// Every process started here is stopped by stop(), on SIGINT/SIGTERM and at exit.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { tempDir } from "../tmpdir";

export const PEBBLE_VERSION = process.env.FDEPLOY_PEBBLE_VERSION ?? "v2.10.3";
const CACHE = process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy";
const BRIDGE_IP = "10.213.0.1";

export interface PebbleOptions {
  /** ACME API port on the bridge address (default 14000). */
  port?: number;
  /** Validity of issued certificates in seconds (default 20 days: below certbot's 30-day renewal window, so `certbot renew` renews). */
  validitySeconds?: number;
}

export interface Pebble {
  /** The ACME directory URL, as the test servers reach it. */
  directory: string;
  /** PEM of the CA that signed the ACME API's TLS certificate (the stack's tls.caBundle). */
  apiCaPem: string;
  apiCaPath: string;
  /** Make NAME resolve (for pebble's validation) to IPV4. */
  addName(name: string, ipv4: string): Promise<void>;
  removeName(name: string): Promise<void>;
  /** PEM of pebble's current root CA (issued chains end there). */
  root(): Promise<string>;
  /** pebble's log so far (for failure messages). */
  log(): string;
  stop(): void;
}

const running = new Set<ChildProcess>();
function stopAllPebbles(): void {
  for (const p of running) if (p.exitCode === null) p.kill("SIGTERM");
  running.clear();
}
process.once("exit", stopAllPebbles);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => { stopAllPebbles(); process.exit(130); });

function binary(name: string): string {
  const p = path.join(CACHE, "pebble", PEBBLE_VERSION, name);
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: build it with bash toolchain/pebble.sh (scripts/setup.sh runs it; it needs Go)`);
  return p;
}

/** A throw-away CA and a certificate for the ACME API on the bridge address (and loopback, for the management API). */
function makeApiCert(dir: string): void {
  const o = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=flask-deploy e2e ACME API CA", "-keyout", "ca.key", "-out", "ca.pem",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  o("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=pebble",
    "-keyout", "api.key", "-out", "api.csr");
  fs.writeFileSync(path.join(dir, "api.ext"), `subjectAltName=IP:${BRIDGE_IP},IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n`);
  o("x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
    "-extfile", "api.ext", "-out", "api.pem");
}

function request(url: string, opts: https.RequestOptions & { body?: string; ca?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith("https:") ? https : require("http");
    const req = mod.request(url, { ...opts, timeout: 5000 }, (res: any) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`timeout: ${url}`)));
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

/** Start challtestsrv and pebble; resolves once pebble's directory answers. Needs the test bridge (boot a test server first). */
export async function startPebble(opts: PebbleOptions = {}): Promise<Pebble> {
  const port = opts.port ?? 14000;
  const mgmtPort = port + 1000, dnsPort = port + 100, dnsMgmtPort = port + 101;
  const dir = tempDir("fdeploy-pebble-");
  makeApiCert(dir);
  const validity = opts.validitySeconds ?? 20 * 86400;
  fs.writeFileSync(path.join(dir, "pebble.json"), JSON.stringify({
    pebble: {
      listenAddress: `${BRIDGE_IP}:${port}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: path.join(dir, "api.pem"),
      privateKey: path.join(dir, "api.key"),
      httpPort: 80, // HTTP-01 is validated on the real port 80 of the test server
      tlsPort: 443,
      ocspResponderURL: "",
      externalAccountBindingRequired: false,
      keyAlgorithm: "ecdsa",
      profiles: { default: { description: "e2e", validityPeriod: validity } },
    },
  }, null, 1));
  let logText = "";
  const start = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const p = spawn(binary(name), args, { cwd: dir, env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    running.add(p);
    p.stdout!.on("data", (d) => (logText += d));
    p.stderr!.on("data", (d) => (logText += d));
    return p;
  };
  // DNS on loopback only; no default address (an unknown name does not resolve), the rest off
  const dns = start("pebble-challtestsrv", ["-dnsserver", `127.0.0.1:${dnsPort}`, "-management", `127.0.0.1:${dnsMgmtPort}`,
    "-defaultIPv4", "", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""]);
  const pebble = start("pebble", ["-config", path.join(dir, "pebble.json"), "-dnsserver", `127.0.0.1:${dnsPort}`], {
    PEBBLE_VA_NOSLEEP: "1", // no random sleeps before validation
    PEBBLE_WFE_NONCEREJECT: "0", // no deliberate badNonce errors
    PEBBLE_AUTHZREUSE: "0", // every order validates again (a renewal proves the name anew)
  });
  const apiCaPem = fs.readFileSync(path.join(dir, "ca.pem"), "utf8");
  const directory = `https://${BRIDGE_IP}:${port}/dir`;
  const stop = () => {
    for (const p of [pebble, dns]) { if (p.exitCode === null) p.kill("SIGTERM"); running.delete(p); }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20000;
  let lastError = "";
  for (;;) {
    const probe = (url: string, o = {}) => request(url, o).then((r) => r.status > 0, (e) => { lastError = `${url}: ${e.message}`; return false; });
    if (await probe(directory, { ca: apiCaPem }) && await probe(`http://127.0.0.1:${dnsMgmtPort}/dns-request-history`, { method: "POST", body: "{}" })) break;
    if (Date.now() > deadline || pebble.exitCode !== null || dns.exitCode !== null) {
      stop();
      throw new Error(`pebble did not start (${lastError}):\n${logText}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const dnsApi = async (what: string, body: object) => {
    const r = await request(`http://127.0.0.1:${dnsMgmtPort}/${what}`, { method: "POST", body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`challtestsrv ${what}: HTTP ${r.status} ${r.body}`);
  };
  return {
    directory, apiCaPem, apiCaPath: path.join(dir, "ca.pem"),
    addName: (name, ipv4) => dnsApi("add-a", { host: `${name}.`, addresses: [ipv4] }),
    removeName: (name) => dnsApi("clear-a", { host: `${name}.` }),
    async root() {
      const r = await request(`https://127.0.0.1:${mgmtPort}/roots/0`, { ca: apiCaPem });
      if (r.status !== 200) throw new Error(`pebble roots: HTTP ${r.status}`);
      return r.body;
    },
    log: () => logText,
    stop,
  };
}
