// HTTPS (issue #12): the tls.* config keys and the HTTPS site. Bad TLS config is refused with the
// key and the expected form; the site with TLS redirects HTTP, serves the ACME challenge from the
// webroot, and serves the certificate certbot keeps; TLS off renders the site as it always was.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LETS_ENCRYPT, LETS_ENCRYPT_STAGING, parseConfig, tlsSettings } from "../../components/config";
import { acmeWebroot, certName, renderSite, SiteSettings } from "../../components/nginx-site";
import { errorOf, PROJECT_DIR, rawConfig } from "./helpers";
import { tempDir } from "../tmpdir";

function pemFile(content: string): string {
  const dir = tempDir("fdeploy-unit-ca-");
  const p = path.join(dir, "ca.pem");
  fs.writeFileSync(p, content);
  return p;
}
const PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

describe("tls config", () => {
  it("is off by default, and off when tls.mode is off", () => {
    assert.deepStrictEqual(tlsSettings(parseConfig(rawConfig(), PROJECT_DIR)), { mode: "off" });
    assert.deepStrictEqual(tlsSettings(parseConfig(rawConfig({ tls: { mode: "off" }, serverName: "_" }), PROJECT_DIR)), { mode: "off" });
  });

  it("acme: the names are serverName's; Let's Encrypt production by default, staging on request", () => {
    const t = tlsSettings(parseConfig(rawConfig({ tls: { mode: "acme", email: "ops@example.com" } }), PROJECT_DIR));
    assert.deepStrictEqual(t, { mode: "acme", names: ["example.com", "www.example.com"], acmeServer: LETS_ENCRYPT, email: "ops@example.com", hstsMaxAgeSeconds: 0 });
    const s = tlsSettings(parseConfig(rawConfig({ tls: { mode: "acme", staging: "true" } }), PROJECT_DIR));
    assert.strictEqual(s.mode === "acme" && s.acmeServer, LETS_ENCRYPT_STAGING);
    const b = tlsSettings(parseConfig(rawConfig({ tls: { mode: "acme", staging: true, hstsMaxAgeSeconds: 31536000 } }), PROJECT_DIR));
    assert.strictEqual(b.mode === "acme" && b.hstsMaxAgeSeconds, 31536000);
  });

  it("a private ACME server with its CA bundle (a PEM file)", () => {
    const ca = pemFile(PEM);
    const t = tlsSettings(parseConfig(rawConfig({ tls: { mode: "acme", acmeServer: "https://10.213.0.1:14000/dir", caBundle: ca } }), PROJECT_DIR));
    assert.ok(t.mode === "acme");
    assert.strictEqual(t.acmeServer, "https://10.213.0.1:14000/dir");
    assert.strictEqual(t.caBundlePath, ca);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["serverName '_' with TLS", { serverName: "_", tls: { mode: "acme" } }, /flask-deploy:serverName: tls\.mode acme needs the site's DNS names .*'_' names none/],
    ["an IP address as serverName with TLS", { serverName: "203.0.113.10", tls: { mode: "acme" } }, /flask-deploy:serverName: '203\.0\.113\.10' is an IP address/],
    ["a wildcard with TLS (HTTP-01 cannot validate it)", { serverName: "*.example.com", tls: { mode: "acme" } }, /flask-deploy:serverName: '\*\.example\.com' is a wildcard; HTTP-01 cannot validate wildcards/],
    ["a single-label name with TLS", { serverName: "localhost", tls: { mode: "acme" } }, /flask-deploy:serverName: 'localhost' is not a fully qualified DNS name/],
    ["an unknown mode", { tls: { mode: "on" } }, /flask-deploy:tls\.mode: expected one of: off, acme, custom/],
    ["a typo under tls", { tls: { mode: "acme", emial: "a@b.co" } }, /flask-deploy:tls\.emial: unknown setting \(a typo\?\); known: mode, email, acmeServer, staging, caBundle, hstsMaxAgeSeconds, certificate, privateKey/],
    ["a bad e-mail", { tls: { mode: "acme", email: "not an email" } }, /flask-deploy:tls\.email: expected an e-mail address/],
    ["an http:// ACME directory", { tls: { mode: "acme", acmeServer: "http://acme.example.com/dir" } }, /flask-deploy:tls\.acmeServer: expected the https:\/\/ URL of an ACME directory/],
    ["an ACME directory with shell text", { tls: { mode: "acme", acmeServer: "https://a.example.com/$(id)" } }, /flask-deploy:tls\.acmeServer: expected the https:\/\/ URL/],
    ["staging and acmeServer together", { tls: { mode: "acme", staging: "true", acmeServer: "https://acme.example.com/dir" } }, /flask-deploy:tls\.staging: true selects Let's Encrypt's staging directory, but tls\.acmeServer is set too/],
    ["a bad staging value", { tls: { mode: "acme", staging: "yes" } }, /flask-deploy:tls\.staging: expected true or false/],
    ["a CA bundle that does not exist", { tls: { mode: "acme", caBundle: "nope/ca.pem" } }, /flask-deploy:tls\.caBundle: 'nope\/ca\.pem' is not a readable file \(expected a PEM file/],
    ["a CA bundle without a certificate", { tls: { mode: "acme", caBundle: pemFile("hello") } }, /flask-deploy:tls\.caBundle: .* holds no PEM certificate/],
    ["a CA bundle with a private key", { tls: { mode: "acme", caBundle: pemFile(PEM + "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n") } }, /flask-deploy:tls\.caBundle: .* contains a private key/],
    ["a negative HSTS max-age", { tls: { mode: "acme", hstsMaxAgeSeconds: "-1" } }, /flask-deploy:tls\.hstsMaxAgeSeconds/],
  ];
  for (const [what, over, re] of bad) {
    it(`refuses ${what}`, () => {
      assert.match(errorOf(over), re);
    });
  }
});

/** A self-signed certificate for NAMES and its key (openssl), PEM. */
function selfSigned(names: string[], days = 30): { cert: string; key: string } {
  const dir = tempDir("fdeploy-unit-cert-");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", String(days),
    "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
    "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
  return { cert: fs.readFileSync(path.join(dir, "cert.pem"), "utf8"), key: fs.readFileSync(path.join(dir, "key.pem"), "utf8") };
}

describe("tls config: your own certificate (tls.mode custom)", () => {
  const good = selfSigned(["example.com", "www.example.com"]);
  const other = selfSigned(["example.com", "www.example.com"]);
  const custom = (over: Record<string, unknown> = {}, secret = ["secrets", "tls"]) =>
    rawConfig({ tls: { mode: "custom", certificate: good.cert, privateKey: good.key, ...over } }, secret);
  const errorOfRaw = (raw: ReturnType<typeof rawConfig>) => {
    try { parseConfig(raw, PROJECT_DIR); } catch (e) { return (e as Error).message; }
    return assert.fail("expected the config to be refused");
  };

  it("accepts a chain and key that belong together and cover serverName", () => {
    const t = tlsSettings(parseConfig(custom(), PROJECT_DIR));
    assert.ok(t.mode === "custom");
    assert.strictEqual(t.certificate, good.cert.trim());
  });
  it("refuses a private key not set as a secret", () => {
    assert.match(errorOfRaw(custom({}, ["secrets"])), /flask-deploy:tls\.privateKey: must be set as a secret: pulumi config set --secret --path tls\.privateKey/);
    assert.match(errorOfRaw({ ...custom(), plaintextTlsKey: true }), /flask-deploy:tls\.privateKey: must be set as a secret/);
  });
  it("refuses a key of another certificate", () => {
    assert.match(errorOfRaw(custom({ privateKey: other.key })), /flask-deploy:tls\.privateKey: does not belong to the certificate in tls\.certificate/);
  });
  it("refuses a certificate that does not cover a name in serverName", () => {
    const narrow = selfSigned(["example.com"]);
    assert.match(errorOfRaw(custom({ certificate: narrow.cert, privateKey: narrow.key })), /flask-deploy:serverName: 'www\.example\.com' is not covered by the certificate in tls\.certificate \(it names: DNS:example\.com\)/);
  });
  it("accepts a wildcard certificate for the names it covers", () => {
    const wild = selfSigned(["example.com", "*.example.com"]);
    assert.doesNotThrow(() => parseConfig(custom({ certificate: wild.cert, privateKey: wild.key }), PROJECT_DIR));
  });
  it("refuses a missing chain or key, or text that is no certificate", () => {
    assert.match(errorOfRaw(custom({ certificate: undefined })), /flask-deploy:tls\.certificate: missing; tls\.mode custom needs the certificate chain/);
    assert.match(errorOfRaw(rawConfig({ tls: { mode: "custom", certificate: good.cert } }, ["secrets", "tls"])), /flask-deploy:tls\.privateKey: missing/);
    assert.match(errorOfRaw(custom({ certificate: "hello" })), /flask-deploy:tls\.certificate: expected a PEM certificate chain/);
    assert.match(errorOfRaw(custom({ privateKey: "hello" })), /flask-deploy:tls\.privateKey: expected a PEM private key/);
  });
});

describe("nginx site with TLS", () => {
  const base: SiteSettings = { appName: "my-app", appRoot: "/srv/my-app", serverName: "example.com www.example.com", clientMaxBodySize: "20m", proxyTimeoutSeconds: 45 };
  const tls = { certName: certName("my-app"), webroot: acmeWebroot("my-app"), hstsMaxAgeSeconds: 0 };
  const site = renderSite({ ...base, tls });
  const [http, httpsBlock] = site.split(/\nserver \{/).slice(1);

  it("port 80 answers ACME challenges from the app's webroot and redirects everything else to HTTPS", () => {
    assert.match(http, /listen 80;/);
    assert.match(http, /location \^~ \/\.well-known\/acme-challenge\/ \{\s+root \/var\/lib\/fdeploy-acme\/my-app;/);
    assert.match(http, /location \/ \{\s+return 301 https:\/\/\$host\$request_uri;/);
    assert.doesNotMatch(http, /proxy_pass/);
  });

  it("port 443 serves the app with certbot's certificate, TLS 1.2+ only, modern ciphers", () => {
    assert.match(httpsBlock, /listen 443 ssl http2;/);
    assert.match(httpsBlock, /server_name example\.com www\.example\.com;/);
    assert.match(httpsBlock, /ssl_certificate \/etc\/letsencrypt\/live\/fdeploy-my-app\/fullchain\.pem;/);
    assert.match(httpsBlock, /ssl_certificate_key \/etc\/letsencrypt\/live\/fdeploy-my-app\/privkey\.pem;/);
    assert.match(httpsBlock, /ssl_protocols TLSv1\.2 TLSv1\.3;/);
    assert.doesNotMatch(httpsBlock, /TLSv1(\.1)?[ ;]/);
    assert.doesNotMatch(httpsBlock, /(RC4|3DES|MD5|CBC)/);
    assert.match(httpsBlock, /ssl_session_cache shared:fdeploy_my_app_tls:10m;/);
    assert.match(httpsBlock, /proxy_pass http:\/\/fdeploy_my_app;/);
    assert.match(httpsBlock, /proxy_set_header X-Forwarded-Proto \$scheme;/);
    assert.match(httpsBlock, /location \/static\/ \{\s+alias \/srv\/my-app\/current\/static\/;/);
    assert.match(httpsBlock, /server_tokens off;/);
    assert.match(httpsBlock, /location ~ \/\\\.\(\?!well-known\/\) \{\s+return 404;/);
    assert.doesNotMatch(site, /Strict-Transport-Security/, "no HSTS unless asked");
  });

  it("sends HSTS with the configured max-age", () => {
    assert.match(renderSite({ ...base, tls: { ...tls, hstsMaxAgeSeconds: 31536000 } }), /add_header Strict-Transport-Security "max-age=31536000" always;/);
  });

  it("while the first certificate is issued: plain HTTP serving the app, plus the challenge location, no 443", () => {
    const issuing = renderSite({ ...base, tls: { ...tls, issuing: true } });
    assert.doesNotMatch(issuing, /443|ssl_|return 301/);
    assert.match(issuing, /location \^~ \/\.well-known\/acme-challenge\/ \{\s+root \/var\/lib\/fdeploy-acme\/my-app;/);
    assert.match(issuing, /proxy_pass http:\/\/fdeploy_my_app;/);
  });

  it("tls.mode custom: the certificate from its own root-only folder", () => {
    const own = renderSite({ ...base, tls: { ...tls, certDir: "/etc/fdeploy/my-app/tls" } });
    assert.match(own, /ssl_certificate \/etc\/fdeploy\/my-app\/tls\/fullchain\.pem;/);
    assert.match(own, /ssl_certificate_key \/etc\/fdeploy\/my-app\/tls\/privkey\.pem;/);
  });

  it("with TLS off the site is unchanged (existing stacks see no change)", () => {
    const off = renderSite(base);
    assert.doesNotMatch(off, /443|ssl_|acme-challenge|return 301/);
    assert.strictEqual(off, renderSite({ ...base, tls: undefined }));
  });
});
