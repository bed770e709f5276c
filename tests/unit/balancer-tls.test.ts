// HTTPS at the balancer (components/balancer-tls.ts): a fleet with a managed balancer takes tls.mode custom
// or acme (the certificate ends in HAProxy; the hosts behind it serve HTTP); HTTPS with an external balancer is
// refused at preview naming tls.mode, bad acme settings naming theirs; the key goes to the balancer as a secret only.
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
    assert.strictEqual(t.acme, undefined);
    assert.strictEqual(t.hstsMaxAgeSeconds, 600);
  });

  it("tls.mode acme with a managed balancer: accepted; lb-configure gets the directory, e-mail and private CA, no key", async () => {
    const ca = path.join(dir, "ca.pem");
    fs.writeFileSync(ca, CERT);
    const acme = { mode: "acme", acmeServer: "https://acme.example.net/dir", email: "ops@example.com", caBundle: ca, hstsMaxAgeSeconds: "300" };
    const t = balancerTls(parseConfig(rawConfig(fleet(acme)), PROJECT_DIR), PROJECT_DIR).tls!;
    assert.deepStrictEqual(t, { acme: { acmeServer: "https://acme.example.net/dir", email: "ops@example.com", caBundle: CERT.trim() }, hstsMaxAgeSeconds: 300 });
    assert.deepStrictEqual(tlsParams(t), {
      TLS_MODE: "acme", ACME_SERVER: "https://acme.example.net/dir", EMAIL: "ops@example.com", CA_BUNDLE: CERT.trim(), TLS_HSTS: "300",
    });
    // Let's Encrypt by default, no e-mail, no private CA
    assert.deepStrictEqual(tlsParams(balancerTls(parseConfig(rawConfig(fleet({ mode: "acme" })), PROJECT_DIR)).tls), {
      TLS_MODE: "acme", ACME_SERVER: "https://acme-v02.api.letsencrypt.org/directory", EMAIL: "", CA_BUNDLE: "", TLS_HSTS: "0",
    });
  });

  it("acme at the balancer: bad settings refused at preview naming them, as on one server; with an external balancer: tls.mode", () => {
    assert.match(errorOf(fleet({ mode: "acme" }, { serverName: "_" }), ["secrets"]), /flask-deploy:serverName: tls\.mode acme needs the site's DNS names/);
    assert.match(errorOf(fleet({ mode: "acme", email: "ops at example" }), ["secrets"]), /flask-deploy:tls\.email: expected an e-mail address/);
    assert.match(errorOf(fleet({ mode: "acme" }, { loadBalancer: "external" }), ["secrets"]),
      /flask-deploy:tls\.mode: not supported with 2 servers yet: with loadBalancer external, HTTPS is your balancer's: tls\.mode off/);
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
