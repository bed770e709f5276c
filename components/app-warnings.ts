// Preview warnings about a Flask app that would deploy but run unsafely; each names the command that
// fixes it. They never stop a deploy (the app may get its settings another way).
import * as fs from "fs";
import * as path from "path";
import { DeployConfig } from "./config";
import { shippingList } from "./ship-rules";

/** A production stack: its name starts with `prod` (as the strategy default reads it), or env.FLASK_ENV is production. */
export function isProdStack(stack: string, env: Record<string, string>): boolean {
  return /^prod/.test(stack) || env.FLASK_ENV === "production";
}

/** KEY=VALUE lines of a .flaskenv (python-dotenv's form: `export`, quotes, comments). */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    let v = m[2];
    const q = /^(['"])(.*)\1$/.exec(v);
    v = q ? q[2] : v.replace(/\s+#.*$/, "");
    out[m[1]] = v;
  }
  return out;
}

/** Flask's get_debug_flag: set and not 0/false/no. */
const debugOn = (v: string | undefined) => v !== undefined && v !== "" && !["0", "false", "no"].includes(v.toLowerCase());

export function appWarnings(cfg: DeployConfig, appDir: string, stack: string): string[] {
  const warnings: string[] = [];
  const files = shippingList(appDir).files;
  const read = (f: string) => fs.readFileSync(path.join(appDir, f), "utf8");
  const requirements = files.includes("requirements.txt") ? read("requirements.txt") : "";
  const flask = /^\s*flask\b/im.test(requirements);
  if (!flask) return warnings;
  const keyNames = ["SECRET_KEY", "FLASK_SECRET_KEY"];
  const hasKey = keyNames.some((k) => k in cfg.secrets || k in cfg.env)
    || cfg.sharedFiles.some((f) => f.content !== undefined && /\bSECRET_KEY\b\s*[=:]/.test(f.content));
  if (!hasKey) {
    warnings.push(`no SECRET_KEY: neither secrets.SECRET_KEY nor a rendered sharedFiles file sets one, so the app signs sessions ` +
      `with whatever key its code falls back to (often a development key). Set one: python3 -c 'import secrets; print(secrets.token_hex(32))' | ` +
      `pulumi config set --stack ${stack} --secret --path secrets.SECRET_KEY   (an app that reads its key from a config file: ` +
      `render it with sharedFiles, README "Bring your own app")`);
  }
  if (files.includes(".flaskenv") && isProdStack(stack, cfg.env)) {
    const fe = parseDotenv(read(".flaskenv"));
    // the deploy's environment wins over .flaskenv (python-dotenv does not override a set variable)
    const on = [
      ...(debugOn(fe.FLASK_DEBUG) && !("FLASK_DEBUG" in cfg.env) ? [`FLASK_DEBUG=${fe.FLASK_DEBUG}`] : []),
      ...(fe.FLASK_ENV === "development" && !("FLASK_ENV" in cfg.env) && !("FLASK_DEBUG" in cfg.env) ? ["FLASK_ENV=development"] : []),
    ];
    if (on.length) {
      warnings.push(`the shipped .flaskenv sets ${on.join(" and ")}: release commands and jobs (flask …) run in debug mode on this production ` +
        `stack. Turn it off for this stack: pulumi config set --stack ${stack} --path env.FLASK_DEBUG 0   (or remove it from .flaskenv)`);
    }
  }
  return warnings;
}
