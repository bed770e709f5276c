// HTTPS at the balancer (README "Scale out"): with several app servers TLS ends in HAProxy on the balancer
// host (the agent's lb_tls.py), with the stack's own certificate (tls.mode custom; ACME at the balancer is
// not done yet: checkFleet refuses it). The hosts behind it then serve plain HTTP.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig, tlsSettings } from "./config";

export interface BalancerTls {
  certificate: string;
  privateKey: string;
  hstsMaxAgeSeconds: number;
}

/** { tls } for a fleet whose balancer terminates HTTPS, else {}. */
export function balancerTls(cfg: DeployConfig): { tls?: BalancerTls } {
  if (cfg.loadBalancer === undefined || cfg.loadBalancer === "external") return {};
  const t = tlsSettings(cfg);
  return t.mode === "custom" ? { tls: { certificate: t.certificate, privateKey: t.privateKey, hstsMaxAgeSeconds: t.hstsMaxAgeSeconds } } : {};
}

/** lb-configure's TLS parameters (the key a secret: stdin only, never in logs or plaintext state); none without TLS. */
export function tlsParams(tls: BalancerTls | undefined): Record<string, pulumi.Input<string>> {
  if (!tls) return {};
  return { TLS_CERT: tls.certificate, TLS_KEY: pulumi.secret(tls.privateKey), TLS_HSTS: String(tls.hstsMaxAgeSeconds) };
}
