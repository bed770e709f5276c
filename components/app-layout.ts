// What a Flask app needs beyond its code, resolved from config and the app's folder before any
// server change: which release paths are shared (kept across releases, writable by the app),
// which files are rendered from config, and which folders nginx serves as static files.
import * as fs from "fs";
import * as path from "path";
import { parseAppModule } from "./app-module";
import { shippingList } from "./ship-rules";

export interface SharedFile {
  path: string;
  /** Rendered text (placeholders filled in), or undefined: a file the app itself writes. */
  content?: string;
}

interface Layout {
  appModule: string;
  sharedDirs?: string[];
  sharedFiles: Array<string | SharedFile>;
  static?: Record<string, string>;
  env: Record<string, string>;
  secrets: Record<string, string>;
}

/** The names a shared file's `${NAME}` may use besides env and secrets. */
export const TEMPLATE_BUILTINS = ["DATABASE_PATH"];
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

/**
 * Fills in defaults (sharedDirs: Flask's instance folder; static: the app's static folder) and
 * returns the problems, each naming its key (KEY(name) adds the namespace).
 */
export function resolveAppLayout(cfg: Layout, appDir: string, key: (k: string) => string): string[] {
  const problems: string[] = [];
  // what the release holds: the shipped files (ship-rules.ts), not whatever lies in the local folder
  const files = shippingList(appDir).files;
  const shipped = (p: string) => files.some((f) => under(f, p));
  const isDir = (p: string) => files.some((f) => f.startsWith(`${p}/`));
  // shared dirs: by default Flask's instance folder (beside the package) when the app uses one (its
  // content is never shipped; an app that never mentions it keeps an unchanged release)
  if (cfg.sharedDirs === undefined) cfg.sharedDirs = usesInstanceFolder(appDir, files) ? ["instance"] : [];
  else {
    for (const d of cfg.sharedDirs) {
      if (shipped(d)) problems.push(`${key("sharedDirs")}: '${d}' is part of appDir; a shared dir replaces it with a link to shared/${d}: remove it from appDir or from sharedDirs`);
      for (const o of cfg.sharedDirs) if (o !== d && under(o, d)) problems.push(`${key("sharedDirs")}: '${o}' is inside '${d}', which is shared already`);
    }
    if (new Set(cfg.sharedDirs).size !== cfg.sharedDirs.length) problems.push(`${key("sharedDirs")}: lists a folder twice`);
  }
  const seen = new Set<string>();
  cfg.sharedFiles = cfg.sharedFiles.map((f) => (typeof f === "string" ? { path: f } : f));
  for (const f of cfg.sharedFiles as SharedFile[]) {
    const inShared = cfg.sharedDirs.find((d) => under(f.path, d));
    if (seen.has(f.path)) problems.push(`${key("sharedFiles")}: '${f.path}' is listed twice`);
    seen.add(f.path);
    if (cfg.sharedDirs.some((d) => under(d, f.path))) problems.push(`${key("sharedFiles")}: '${f.path}' is (or holds) a shared dir`);
    else if (inShared && f.content === undefined) problems.push(`${key("sharedFiles")}: '${f.path}' is inside the shared dir '${inShared}' already (list it only to render it: { path, content })`);
    else if (!inShared && shipped(f.path)) problems.push(`${key("sharedFiles")}: '${f.path}' is part of appDir; a shared file replaces it with a link: remove it from appDir or from sharedFiles`);
    for (const m of (f.content ?? "").matchAll(PLACEHOLDER)) {
      if (!(m[1] in cfg.env) && !(m[1] in cfg.secrets) && !TEMPLATE_BUILTINS.includes(m[1])) {
        problems.push(`${key("sharedFiles")}: '${f.path}' uses \${${m[1]}}, which is not set (expected a name from env, secrets or ${TEMPLATE_BUILTINS.join(", ")})`);
      }
    }
  }
  // static files: the app's own static folder (a package's <pkg>/static, else static/) at /static/,
  // only when it exists: otherwise no nginx location, and Flask serves its own static route
  if (cfg.static === undefined) {
    const m = parseAppModule(cfg.appModule);
    const parts = typeof m === "string" ? [] : m.module.split(".");
    const candidates = parts.map((_, i) => parts.slice(0, parts.length - i).join("/"))
      .filter((pkg) => shipped(`${pkg}/__init__.py`)).map((pkg) => `${pkg}/static`);
    const found = [...candidates, "static"].find(isDir);
    cfg.static = found ? { "/static/": found } : {};
  } else {
    for (const [prefix, folder] of Object.entries(cfg.static)) {
      if (!isDir(folder)) problems.push(`${key(`static.${prefix}`)}: '${folder}' is not a folder in appDir`);
    }
  }
  return problems;
}

/** Whether the app's shipped Python code uses Flask's instance folder (instance_path, instance_relative_config). */
export function usesInstanceFolder(dir: string, files: string[] = shippingList(dir).files): boolean {
  return files.some((f) => f.endsWith(".py") && /\binstance_(path|relative_config)\b/.test(fs.readFileSync(path.join(dir, f), "utf8")));
}

/** A shared file's text with `${NAME}` replaced by VALUES[NAME] (names were checked). */
export function renderTemplate(content: string, values: Record<string, string>): string {
  return content.replace(PLACEHOLDER, (_, n: string) => values[n] ?? "");
}
