// HTTPS at the balancer (components/balancer-tls.ts): a fleet with a managed balancer takes tls.mode custom
// (the certificate ends in HAProxy; the hosts behind it serve HTTP); ACME at the balancer and HTTPS with an
// external balancer are refused at preview naming tls.mode; the key goes to the balancer as a secret only.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parseConfig } from "../../components/config";
import { balancerTls, tlsParams } from "../../components/balancer-tls";
import { errorOf, HOST_KEY, PROJECT_DIR, rawConfig, tempKeyFile } from "./helpers";
import { tempDir } from "../tmpdir";

const srv = (host: string) => ({ host, privateKeyPath: tempKeyFile(), hostKey: HOST_KEY });
const dir = tempDir("fdeploy-unit-lb-cert-");
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
  "-subj", "/CN=example.com", "-addext", "subjectAltName=DNS:example.com,DNS:www.example.com",
  "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
const CERT = fs.readFileSync(path.join(dir, "cert.pem"), "utf8"), KEY = fs.readFileSync(path.join(dir, "key.pem"), "utf8");
const fleet = (tls: Record<string, unknown>, over: Record<string, unknown> = {}) => ({
  server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: srv("10.0.0.9"),
  secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/x" }, tls, ...over,
});
const own = { mode: "custom", certificate: CERT, privateKey: KEY, hstsMaxAgeSeconds: "600" };

describe("HTTPS at the balancer (tls on a fleet)", () => {
  it("tls.mode custom with a managed balancer: accepted; the balancer gets the certificate", () => {
    const cfg = parseConfig(rawConfig(fleet(own), ["secrets", "tls"]), PROJECT_DIR);
    const t = balancerTls(cfg).tls!;
    assert.strictEqual(t.certificate, CERT.trim());
    assert.strictEqual(t.hstsMaxAgeSeconds, 600);
  });

  it("acme at the balancer and HTTPS with an external balancer: refused naming tls.mode", () => {
    assert.match(errorOf(fleet({ mode: "acme" }), ["secrets", "tls"]),
      /flask-deploy:tls\.mode: not supported with 2 servers yet: acme at the balancer is not done yet; use tls\.mode custom/);
    assert.match(errorOf(fleet(own, { loadBalancer: "external" }), ["secrets", "tls"]),
      /flask-deploy:tls\.mode: not supported with 2 servers yet: with loadBalancer external, HTTPS is your balancer's: tls\.mode off/);
  });

  it("no tls, or a single server: nothing at the balancer, lb-configure's parameters as before", () => {
    assert.deepStrictEqual(balancerTls(parseConfig(rawConfig(fleet({ mode: "off" })), PROJECT_DIR)), {});
    assert.deepStrictEqual(balancerTls(parseConfig(rawConfig({ tls: { mode: "custom", certificate: CERT, privateKey: KEY } }, ["secrets", "tls"]), PROJECT_DIR)), {});
    assert.deepStrictEqual(tlsParams(undefined), {});
  });

  it("the private key is a secret parameter", async () => {
    const p = tlsParams({ certificate: CERT, privateKey: KEY, hstsMaxAgeSeconds: 0 });
    assert.strictEqual(p.TLS_HSTS, "0");
    assert.strictEqual(await (pulumi.output(p.TLS_KEY) as any).isSecret, true);
  });
});
