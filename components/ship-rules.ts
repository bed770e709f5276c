// What of a local folder is shipped (uploaded as a release, hashed into its id): every file except
// - the built-in rules, which nothing re-includes: virtualenvs, caches, compiled Python, local
//   databases (*.db, *.sqlite*, SQLite's *-wal / *-shm), the content of Flask's instance folder
//   (instance/ beside the app: it lives in shared/ on the server), and every dotfile or dot-folder
//   (.git, .env, editor state, …) except Flask's .flaskenv and a static .well-known/;
// - the app's own rules: its .gitignore files (each applies below its folder, a deeper one wins, as
//   in git), or, when appDir has one, an .fdeployignore at its top that replaces them (as
//   .dockerignore does). Matched with the `ignore` package (gitignore semantics); a folder left out
//   is not entered, so a negation cannot bring back a file below it (as in git).
import * as fs from "fs";
import * as path from "path";
import ignore, { Ignore } from "ignore";

export const BUILTIN_RULES = [
  ".*", "!.flaskenv", "!.well-known",
  "venv/", "__pycache__/", "node_modules/", "*.pyc",
  "*.db", "*.sqlite", "*.sqlite?", "*.sqlite-*", "*-wal", "*-shm", "*-journal",
  "/instance/",
];
export const FDEPLOYIGNORE = ".fdeployignore";

export interface Shipping {
  /** Shipped files, relative, sorted. */
  files: string[];
  /** What the rules left out: files, and folders (with a trailing '/', counted once). */
  leftOut: string[];
  /** The app's own rules in effect: '.fdeployignore', '.gitignore' (with nested ones), or none. */
  rules?: string;
}

const builtin = ignore().add(BUILTIN_RULES);

/** The files of DIR that are shipped, and what the rules left out. */
export function shippingList(dir: string): Shipping {
  const own = fs.existsSync(path.join(dir, FDEPLOYIGNORE)) ? FDEPLOYIGNORE : ".gitignore";
  const files: string[] = [];
  const leftOut: string[] = [];
  let used = false;
  // matchers: [folder (relative, '' for the top), rules], the deepest last
  const walk = (rel: string, matchers: Array<[string, Ignore]>) => {
    const here = path.join(dir, rel);
    const rulesFile = path.join(here, own);
    if ((own === ".gitignore" || rel === "") && fs.existsSync(rulesFile) && fs.statSync(rulesFile).isFile()) {
      matchers = [...matchers, [rel, ignore().add(fs.readFileSync(rulesFile, "utf8"))]];
      used = true;
    }
    for (const entry of fs.readdirSync(here, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      const isDir = entry.isDirectory();
      if (!isDir && !entry.isFile()) continue;   // sockets, links: never shipped
      if (builtin.ignores(isDir ? `${r}/` : r) || ownRulesIgnore(matchers, r, isDir)) {
        leftOut.push(isDir ? `${r}/` : r);
      } else if (isDir) walk(r, matchers);
      else files.push(r);
    }
  };
  walk("", []);
  return { files: files.sort(), leftOut, rules: used ? own : undefined };
}

/** git's precedence: the deepest rules file that decides (ignores or re-includes) wins. */
function ownRulesIgnore(matchers: Array<[string, Ignore]>, rel: string, isDir: boolean): boolean {
  for (let i = matchers.length - 1; i >= 0; i--) {
    const [base, m] = matchers[i];
    const sub = base ? rel.slice(base.length + 1) : rel;
    const t = m.test(isDir ? `${sub}/` : sub);
    if (t.ignored) return true;
    if (t.unignored) return false;
  }
  return false;
}

/** One line for `pulumi preview`: how many files are shipped, and what the rules left out. */
export function describeShipping(what: string, s: Shipping): string {
  const shown = s.leftOut.slice(0, 8).join(", ") + (s.leftOut.length > 8 ? ", …" : "");
  return `${what}: shipping ${s.files.length} file${s.files.length === 1 ? "" : "s"}; left out by rule: ${s.leftOut.length}` +
    `${s.leftOut.length ? ` (${shown})` : ""} — rules: built-in${s.rules ? ` + ${s.rules}` : ""} (README "Shipping rules")`;
}
