// What `flask-deploy init` reads from a Flask app's repository, so it asks nothing it can find: the
// app's folder (the one with requirements.txt), Gunicorn's target, the static folder, the migrations
// folder (SQL files, or Flask-Migrate's) and a name. Read only; text patterns, no Python run.
import * as fs from "fs";
import * as path from "path";
import { RESERVED_ACCOUNTS } from "../../components/config";

export interface Detected {
  /** The app's folder, relative to the project ("." for the project itself). */
  appDir: string;
  /** Gunicorn's target: `module:app`, or `module:factory()`. */
  appModule: string;
  /** The static folder nginx serves at /static/, relative to appDir (none: Flask serves its own route). */
  staticDir?: string;
  /** SQL migrations folder relative to the project; "none" for Flask-Migrate's (run by releaseCommands). */
  migrationsDir: string;
  releaseCommands: string[];
  /** appDir's requirements.txt, relative to the project, and whether it lists gunicorn. */
  requirements: string;
  gunicorn: boolean;
  appName: string;
}

/** Something init cannot detect: the message names the option that says it. */
export class InitError extends Error {}

export interface DetectOptions {
  appDir?: string;
  appModule?: string;
  appName?: string;
}

/** Folders never taken for the app's: tooling, virtualenvs, dependencies. */
const SKIP = new Set(["node_modules", "venv", "env", "__pycache__", "migrations", "tests", "test", "docs", "instance", "dist", "build"]);
/** Module files a WSGI entry point usually lives in, tried first. */
const ENTRY_FILES = ["wsgi", "app", "application", "main", "server", "run"];

const isDir = (p: string) => { try { return fs.statSync(p).isDirectory(); } catch { return false; } };
const isFile = (p: string) => { try { return fs.statSync(p).isFile(); } catch { return false; } };
const rel = (projectDir: string, p: string) => path.relative(projectDir, p) || ".";

export function detect(projectDir: string, opts: DetectOptions = {}): Detected {
  const appDir = opts.appDir ?? findAppDir(projectDir);
  const dir = path.resolve(projectDir, appDir);
  const requirements = path.join(dir, "requirements.txt");
  if (!isFile(requirements)) {
    throw new InitError(`no requirements.txt in ${appDir}: the app's folder needs one listing Flask and gunicorn (--app-dir DIR names the folder)`);
  }
  const entry = opts.appModule ? { appModule: opts.appModule, flaskFile: undefined } : findModule(dir, appDir);
  const migrations = findMigrations(projectDir, dir, entry.appModule);
  return {
    appDir: rel(projectDir, dir),
    appModule: entry.appModule,
    staticDir: findStatic(dir, entry.flaskFile),
    ...migrations,
    requirements: rel(projectDir, requirements),
    gunicorn: /^\s*gunicorn\b/im.test(fs.readFileSync(requirements, "utf8")),
    appName: opts.appName ?? appNameFrom(projectDir),
  };
}

/** The project itself when it has requirements.txt, else the one folder below it that has (with a Flask app). */
function findAppDir(projectDir: string): string {
  if (isFile(path.join(projectDir, "requirements.txt"))) return ".";
  const found = fs.readdirSync(projectDir).sort()
    .filter((d) => !d.startsWith(".") && !SKIP.has(d) && isFile(path.join(projectDir, d, "requirements.txt")));
  const withApp = found.filter((d) => { try { findModule(path.join(projectDir, d), d); return true; } catch { return false; } });
  const pick = withApp.length ? withApp : found;
  if (pick.length === 1) return pick[0];
  if (pick.length === 0) {
    throw new InitError("no requirements.txt in this folder or a folder below it: run init in the app's repository, or name the app's folder with --app-dir DIR");
  }
  throw new InitError(`several folders hold a Flask app (${pick.join(", ")}): name one with --app-dir DIR`);
}

interface Entry { appModule: string; flaskFile?: string }

/**
 * Gunicorn's target in DIR: a module-level app object (`app = Flask(...)`, `app = create_app()`) wins over
 * a factory (`def create_app(...)` whose arguments all have defaults). Entry-point files first, then packages.
 */
function findModule(dir: string, appDir: string): Entry {
  const modules: [string, string][] = [];   // [module name, file]
  const names = fs.readdirSync(dir).sort();
  for (const n of names) {
    if (n.endsWith(".py") && isFile(path.join(dir, n))) modules.push([n.slice(0, -3), path.join(dir, n)]);
    else if (!n.startsWith(".") && !SKIP.has(n) && isFile(path.join(dir, n, "__init__.py"))) modules.push([n, path.join(dir, n, "__init__.py")]);
  }
  const rank = (m: string) => { const i = ENTRY_FILES.indexOf(m); return i < 0 ? ENTRY_FILES.length : i; };
  modules.sort((a, b) => rank(a[0]) - rank(b[0]));
  const flaskFile = modules.find(([, f]) => /\bFlask\(/.test(read(f)))?.[1];
  for (const [m, f] of modules) {
    const obj = /^(\w+)\s*=\s*(?:flask\.)?Flask\(|^(app|application)\s*=\s*[\w.]+\(/m.exec(read(f));
    if (obj) return { appModule: `${m}:${obj[1] ?? obj[2]}`, flaskFile };
  }
  for (const [m, f] of modules) {
    for (const fn of read(f).matchAll(/^def\s+(create_app|make_app)\s*\(([^)]*)\)/gm)) {
      const params = fn[2].split(",").map((p) => p.trim()).filter((p) => p && !p.startsWith("*"));
      if (params.every((p) => p.includes("="))) return { appModule: `${m}:${fn[1]}()`, flaskFile };
    }
  }
  throw new InitError(`no Flask app found in ${appDir} (an \`app = Flask(...)\` or a \`def create_app()\`): name Gunicorn's target with --module, e.g. --module wsgi:app`);
}

function read(file: string): string {
  try { return fs.readFileSync(file, "utf8"); } catch { return ""; }
}

/** Flask's static folder: a literal `static_folder=` beside the Flask(...) call, else `static` beside it, else in DIR. */
function findStatic(dir: string, flaskFile?: string): string | undefined {
  const candidates: string[] = [];
  if (flaskFile) {
    const literal = /\bFlask\([^)]*static_folder\s*=\s*["']([^"']+)["']/.exec(read(flaskFile));
    if (literal) candidates.push(path.resolve(path.dirname(flaskFile), literal[1]));
    candidates.push(path.join(path.dirname(flaskFile), "static"));
  }
  candidates.push(path.join(dir, "static"));
  const found = candidates.find((c) => isDir(c) && !path.relative(dir, c).startsWith(".."));
  return found && path.relative(dir, found);
}

/** SQL migrations (NNNN_name.up.sql) in appDir/migrations or the project's migrations/; Flask-Migrate's: run by `flask db upgrade`. */
function findMigrations(projectDir: string, dir: string, appModule: string): { migrationsDir: string; releaseCommands: string[] } {
  for (const m of [path.join(dir, "migrations"), path.join(projectDir, "migrations")]) {
    if (!isDir(m)) continue;
    if (isFile(path.join(m, "env.py")) || isFile(path.join(m, "alembic.ini"))) {
      return { migrationsDir: "none", releaseCommands: [`flask --app '${appModule}' db upgrade`] };
    }
    if (fs.readdirSync(m).some((f) => /^\d+_.+\.up\.sql$/.test(f))) return { migrationsDir: rel(projectDir, m), releaseCommands: [] };
  }
  return { migrationsDir: "none", releaseCommands: [] };
}

/** The project folder's name as an appName (the app's Unix user on the server), else flaskapp. */
export function appNameFrom(projectDir: string): string {
  const n = path.basename(path.resolve(projectDir)).toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^[^a-z]+|-+$/g, "").slice(0, 31);
  return /^[a-z][a-z0-9-]{1,30}$/.test(n) && !RESERVED_ACCOUNTS.includes(n) && !/^(systemd-|fdbuild-)/.test(n) ? n : "flaskapp";
}
