// tls.mode custom: the certificate chain and key in the stack, checked with Node's X.509 support.
import { DeployConfig, NAMESPACE } from "./schema";

/** custom: a PEM chain and key that belong together, cover the site's names and have not expired. */
export function checkCustomCertificate(cfg: DeployConfig, names: string[]): string[] {
  const t = cfg.tls!;
  const problems: string[] = [];
  if (!t.certificate) problems.push(`${NAMESPACE}:tls.certificate: missing; tls.mode custom needs the certificate chain (PEM, leaf first): pulumi config set --path tls.certificate < fullchain.pem`);
  if (!t.privateKey) problems.push(`${NAMESPACE}:tls.privateKey: missing; tls.mode custom needs the certificate's private key (PEM): pulumi config set --secret --path tls.privateKey < privkey.pem`);
  if (problems.length) return problems;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const crypto = require("crypto") as typeof import("crypto");
  const pems = t.certificate!.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  let leaf: import("crypto").X509Certificate | undefined;
  try {
    leaf = new crypto.X509Certificate(pems[0] ?? "");
  } catch {
    return [`${NAMESPACE}:tls.certificate: expected a PEM certificate chain (-----BEGIN CERTIFICATE----- …), leaf first`];
  }
  if (/PRIVATE KEY-----/.test(t.certificate!)) problems.push(`${NAMESPACE}:tls.certificate: contains a private key; put it in tls.privateKey (--secret)`);
  let key: import("crypto").KeyObject | undefined;
  try {
    key = crypto.createPrivateKey(t.privateKey!);
  } catch {
    problems.push(`${NAMESPACE}:tls.privateKey: expected a PEM private key (-----BEGIN PRIVATE KEY----- …), unencrypted`);
  }
  if (key && !leaf.checkPrivateKey(key)) problems.push(`${NAMESPACE}:tls.privateKey: does not belong to the certificate in tls.certificate`);
  if (new Date(leaf.validTo).getTime() < Date.now()) problems.push(`${NAMESPACE}:tls.certificate: expired on ${leaf.validTo}`);
  if (cfg.serverName !== "_") {
    for (const n of names) {
      const probe = n.startsWith("*.") ? `x${n.slice(1)}` : n;
      if (!leaf.checkHost(probe)) problems.push(`${NAMESPACE}:serverName: '${n}' is not covered by the certificate in tls.certificate (it names: ${leaf.subjectAltName ?? leaf.subject})`);
    }
  }
  return problems;
}
