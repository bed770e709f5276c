// `flask-deploy init --ci github|gitlab`: the pipelines of the package's examples/ci/<provider>/ copied
// into the app's repository as they are (README "Deploy from CI"), and what to set in the CI's settings.
// A file that exists is left, as init's other files are, unless --force replaces it.
import * as fs from "fs";
import * as path from "path";

export const CI_PROVIDERS = ["github", "gitlab"] as const;
export type CiProvider = (typeof CI_PROVIDERS)[number];

export interface CiResult {
  wrote: string[];
  /** Files that existed and were left (no --force), or were already the same. */
  left: string[];
  /** Files that existed, differed, and were replaced (--force). */
  replaced: string[];
}

/** The provider's files: path in the user's repository -> its source under ROOT/examples/ci/<provider>/. */
export function ciFiles(root: string, provider: CiProvider): Record<string, string> {
  const base = path.join(root, "examples", "ci", provider);
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files[path.relative(base, p).split(path.sep).join("/")] = p;
    }
  };
  if (fs.existsSync(base)) walk(base);
  if (!Object.keys(files).length) throw new Error(`no CI files in ${base}: the package is incomplete (npm install flask-deploy again)`);
  return files;
}

export function writeCi(projectDir: string, root: string, provider: CiProvider, force: boolean): CiResult {
  const result: CiResult = { wrote: [], left: [], replaced: [] };
  for (const [name, src] of Object.entries(ciFiles(root, provider))) {
    const dest = path.join(projectDir, name);
    const text = fs.readFileSync(src);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    try {
      fs.writeFileSync(dest, text, { flag: "wx" });   // wx: fails if it exists
      result.wrote.push(name);
    } catch (e: any) {
      if (e.code !== "EEXIST") throw e;
      if (!force || fs.readFileSync(dest).equals(text)) {
        result.left.push(name);
      } else {
        fs.writeFileSync(dest, text);
        result.replaced.push(name);
      }
    }
  }
  return result;
}

export function ciReport(provider: CiProvider, r: CiResult, force: boolean): string {
  const lines = [
    ...r.wrote.map((f) => `wrote ${f}`),
    ...r.replaced.map((f) => `replaced ${f} (--force)`),
    ...r.left.map((f) => `left ${f} (it exists; nothing changed${force ? "" : "; --force replaces it"})`),
    "",
    `Next, for the pipelines (README "Deploy from CI"), in ${provider === "github" ? "the repository's Settings" : "Settings → CI/CD → Variables"}:`,
    ...(provider === "github" ? [
      "  state backend, never a file on the runner: variable PULUMI_BACKEND_URL (an S3-compatible bucket:",
      "    s3://BUCKET?endpoint=https://HOST&use_path_style=true, with secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
      "    and variable AWS_REGION; or a self-hosted backend), or secret PULUMI_ACCESS_TOKEN (Pulumi Cloud)",
      "  secret PULUMI_CONFIG_PASSPHRASE: the stacks' passphrase (unless they use a cloud secrets provider)",
      "  Environments dev and production, each with the secret SSH_PRIVATE_KEY (that server's deploy key);",
      "    production: required reviewers, deployment branches main",
    ] : [
      "  state backend, never a file on the runner: PULUMI_BACKEND_URL (an S3-compatible bucket:",
      "    s3://BUCKET?endpoint=https://HOST&use_path_style=true, with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (masked)",
      "    and AWS_REGION; or a self-hosted backend), or PULUMI_ACCESS_TOKEN (Pulumi Cloud, masked)",
      "  PULUMI_CONFIG_PASSPHRASE (masked): the stacks' passphrase (unless they use a cloud secrets provider)",
      "  SSH_PRIVATE_KEY: type File, protected, one per environment scope (dev, production): that server's deploy key;",
      "    Operate → Environments: protect production (approvals); its job is manual",
    ]),
    "  each stack's server host key pinned in its committed Pulumi.<stack>.yaml (checked against the server's console),",
    "    never StrictHostKeyChecking=no; server.privateKeyPath unset (the job's ssh-agent holds the key):",
    "    ssh-keyscan -t ed25519 HOST | pulumi config set --stack dev --path flask-deploy:server.hostKey",
    "  a runner that reaches the server's SSH port: self-hosted on its network, or a VPN step (not SSH open to the world)",
    "",
  ];
  return lines.join("\n");
}
