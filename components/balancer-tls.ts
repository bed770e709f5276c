// HTTPS at the balancer (README "Scale out"): with several app servers TLS ends in HAProxy on the balancer
// host (the agent's lb_tls.py), with the stack's own certificate (tls.mode custom) or one from the ACME CA
// that certbot gets on the balancer host (tls.mode acme: lb_acme.py). The hosts behind it then serve plain HTTP.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig, tlsSettings } from "./config";
import { caBundleText } from "./tls";

export interface BalancerTls {
  hstsMaxAgeSeconds: number;
  /** tls.mode custom: your chain and key (a secret). */
  certificate?: string;
  privateKey?: string;
  /** tls.mode acme: the ACME directory, the account's e-mail and the PEM of a private ACME server's CA ("" none). */
  acme?: { acmeServer: string; email?: string; caBundle: string };
}

/** { tls } for a fleet whose balancer terminates HTTPS, else {}. */
export function balancerTls(cfg: DeployConfig, projectDir = process.cwd()): { tls?: BalancerTls } {
  if (cfg.loadBalancer === undefined || cfg.loadBalancer === "external") return {};
  const t = tlsSettings(cfg);
  if (t.mode === "acme") {
    const acme = { acmeServer: t.acmeServer, ...(t.email ? { email: t.email } : {}), caBundle: caBundleText(projectDir, t.caBundlePath) };
    return { tls: { acme, hstsMaxAgeSeconds: t.hstsMaxAgeSeconds } };
  }
  return t.mode === "custom" ? { tls: { certificate: t.certificate, privateKey: t.privateKey, hstsMaxAgeSeconds: t.hstsMaxAgeSeconds } } : {};
}

/** lb-configure's TLS parameters (the key a secret: stdin only, never in logs or plaintext state); none without TLS. */
export function tlsParams(tls: BalancerTls | undefined): Record<string, pulumi.Input<string>> {
  if (!tls) return {};
  if (tls.acme) {   // the names are SERVER_NAME's
    const { acmeServer, email, caBundle } = tls.acme;
    return { TLS_MODE: "acme", ACME_SERVER: acmeServer, EMAIL: email ?? "", CA_BUNDLE: caBundle, TLS_HSTS: String(tls.hstsMaxAgeSeconds) };
  }
  return { TLS_CERT: tls.certificate!, TLS_KEY: pulumi.secret(tls.privateKey!), TLS_HSTS: String(tls.hstsMaxAgeSeconds) };
}
