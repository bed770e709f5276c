// HTTPS certificate of the app's site (the agent's tls-create; agent/fdeploy_agent/tls.py): issued by an ACME CA (Let's Encrypt by
// default; any ACME directory with tls.acmeServer, trusting tls.caBundle for its API) with
// Debian's certbot over HTTP-01 through the app's own nginx site, renewed by certbot's systemd
// timer, whose deploy hook reloads nginx. The step runs before NginxSite: it puts an HTTP site with
// the challenge location in force when no certificate exists yet, so the HTTPS site that NginxSite
// then installs never references a missing file. A re-run with the names, directory and CA
// unchanged issues nothing.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { expandHome } from "./config";
import { acmeWebroot, certName, customCertDir, renderSite, SiteSettings } from "./nginx-site";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface TlsCertificateArgs {
  connection: Connection;
  bundle: ScriptBundle;
  /** The site's settings (the names are its serverName). */
  site: SiteSettings;
  /** tls.mode custom: your own certificate chain and private key (a secret) instead of ACME. */
  custom?: { certificate: string; privateKey: string };
  acmeServer?: string;
  email?: string;
  /** PEM file (relative to projectDir) with the CA(s) of a private ACME server's https API. */
  caBundlePath?: string;
  projectDir: string;
  hstsMaxAgeSeconds: number;
  after: pulumi.Resource[];
}

export class TlsCertificate extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;
  /** The site settings with TLS, for NginxSite. */
  public readonly site: SiteSettings;

  constructor(name: string, args: TlsCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:TlsCertificate", name, {}, opts);
    const app = args.site.appName;
    const tls = {
      certName: certName(app), webroot: acmeWebroot(app), hstsMaxAgeSeconds: args.hstsMaxAgeSeconds,
      ...(args.custom ? { certDir: customCertDir(app) } : {}),
    };
    this.site = { ...args.site, tls };
    const caBundle = caBundleText(args.projectDir, args.caBundlePath);
    this.step = remoteStep(`${name}-certificate`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "tls-create",
      deleteWith: app,
      deleteVerb: "tls-delete",
      params: scriptParams({
        APP: app,
        ...(args.custom
          ? { MODE: "custom", CERT: args.custom.certificate, KEY: pulumi.secret(args.custom.privateKey), CERT_DIR: customCertDir(app) }
          : {}),
        CERT_NAME: tls.certName,
        DOMAINS: args.site.serverName,
        ACME_SERVER: args.acmeServer ?? "",
        EMAIL: args.email ?? "",
        CA_BUNDLE: caBundle,
        WEBROOT: tls.webroot,
        SITE: renderSite(this.site),
        SITE_ISSUING: renderSite({ ...this.site, tls: { ...tls, issuing: true } }),
      }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}

/** The PEM of tls.caBundle (a private ACME server's CA; relative to PROJECTDIR), "" without one. */
export function caBundleText(projectDir: string, caBundlePath: string | undefined): string {
  return caBundlePath ? fs.readFileSync(path.resolve(projectDir, expandHome(caBundlePath)), "utf8").trim() : "";
}
