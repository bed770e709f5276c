// Finds every error message the project prints (thrown or refused in the program, raised by the agent and
// migrate.py, `fail "…"` in the remote scripts) by reading the sources, as a template: each placeholder
// (${x}, {x}, %s with its argument, $x) is written `{expression}`.
import * as fs from "fs";
import * as path from "path";

export interface Message { file: string; line: number; text: string }

const ROOT = path.resolve(__dirname, "../..");
const SCRIPTS = path.join(ROOT, "components/scripts");

/** The index just past the bracket closing the one at `open` (strings and comments skipped). */
function closing(src: string, open: number, py: boolean): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'" || (c === "`" && !py)) { i = stringEnd(src, i, py) - 1; continue; }
    if (c === "#" && py) { i = src.indexOf("\n", i); continue; }
    if (c === "/" && !py && src[i + 1] === "/") { i = src.indexOf("\n", i); continue; }
    if ("([{".includes(c)) depth++;
    else if (")]}".includes(c) && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced bracket at offset ${open}`);
}

/** The index just past the string literal starting at `i` (Python: after any prefix letters). */
function stringEnd(src: string, i: number, py: boolean): number {
  const q = src[i];
  const triple = py && src.startsWith(q.repeat(3), i);
  const end = triple ? q.repeat(3) : q;
  for (let j = i + end.length; j < src.length; j++) {
    if (src[j] === "\\") { j++; continue; }
    if (q === "`" && src.startsWith("${", j)) { j = closing(src, j + 1, false) - 1; continue; }
    if (src.startsWith(end, j)) return j + end.length;
  }
  throw new Error(`unterminated string at offset ${i}`);
}

/** Top-level comma-separated parts of an argument list (without its brackets). */
function splitArgs(s: string, py: boolean): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"' || c === "'" || (c === "`" && !py)) { i = stringEnd(s, i, py) - 1; continue; }
    if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) depth--;
    else if (c === "," && depth === 0) { parts.push(s.slice(start, i)); start = i + 1; }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p);
}

const unescape = (s: string) => s.replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");

/** A TypeScript expression of string literals joined by +, as a template; undefined when it holds none. */
function tsTemplate(expr: string): string | undefined {
  let out = "", found = false;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === "`") {
      const end = stringEnd(expr, i, false);
      const body = expr.slice(i + 1, end - 1);
      let t = "";
      for (let j = 0; j < body.length; j++) {
        if (c === "`" && body.startsWith("${", j) && body[j - 1] !== "\\") {
          const k = closing(body, j + 1, false);   // ${…} holds balanced braces
          t += `{${body.slice(j + 2, k - 1)}}`;
          j = k - 1;
        } else t += body[j];
      }
      out += unescape(t);
      found = true;
      i = end - 1;
    } else if (/[\w(]/.test(c)) {
      // a non-literal operand: up to the next top-level +
      let j = i, depth = 0;
      for (; j < expr.length; j++) {
        if ("([{".includes(expr[j])) depth++;
        else if (")]}".includes(expr[j])) depth--;
        else if (expr[j] === "+" && depth === 0) break;
        else if ((expr[j] === '"' || expr[j] === "'" || expr[j] === "`")) j = stringEnd(expr, j, false) - 1;
      }
      out += `{${expr.slice(i, j).trim()}}`;
      i = j - 1;
    }
  }
  return found ? out : undefined;
}

/** A Python expression: adjacent literals (f-strings too), then `% args` or `.format(args)`; as a template. */
function pyTemplate(expr: string): string | undefined {
  let out = "", i = 0, found = false;
  for (;;) {
    while (i < expr.length && /\s/.test(expr[i])) i++;
    const m = /^([rRbBfF]{0,2})(['"])/.exec(expr.slice(i));
    if (!m) break;
    const start = i + m[1].length;
    const end = stringEnd(expr, start, true);
    const triple = expr.startsWith(m[2].repeat(3), start);
    let body = expr.slice(start + (triple ? 3 : 1), end - (triple ? 3 : 1));
    if (!/f/i.test(m[1])) body = body.replace(/\{/g, "\u0001").replace(/\}/g, "\u0002");
    out += unescape(body);
    found = true;
    i = end;
  }
  if (!found) return undefined;
  const rest = expr.slice(i).trim();
  let args: string[] = [];
  const pct = /^%\s*/.exec(rest);
  if (pct) {
    const a = rest.slice(pct[0].length).trim();
    args = a.startsWith("(") && closing(a, 0, true) === a.length ? splitArgs(a.slice(1, -1), true) : [a];
    let n = 0;
    out = out.replace(/%(\(\w+\))?[-#0 +]*\d*(\.\d+)?[sdrfxi]/g, (_, name) => `{${name ? name.slice(1, -1) : args[n++] ?? "?"}}`)
      .replace(/%%/g, "%");
  } else if (rest.startsWith(".format(")) {
    args = splitArgs(rest.slice(".format(".length, -1), true);
    let n = 0;
    out = out.replace(/\u0001(\w*)\u0002/g, (_, name) => `{${name || args[n++]}}`);
  } else if (rest && !rest.startsWith(")")) {
    out += `{${rest}}`;
  }
  // f-string placeholders stay {…}; literal braces of non-f strings come back
  return out.replace(/\u0001/g, "{").replace(/\u0002/g, "}");
}

function lineOf(src: string, i: number): number {
  return src.slice(0, i).split("\n").length;
}

/** Calls matching `re` (ending at its open bracket); `pick` chooses the message argument. */
function calls(file: string, src: string, re: RegExp, py: boolean, pick: (args: string[]) => string | undefined): Message[] {
  const out: Message[] = [];
  for (const m of src.matchAll(re)) {
    const open = m.index! + m[0].length - 1;
    const args = splitArgs(src.slice(open + 1, closing(src, open, py) - 1), py);
    const arg = pick(args);
    const text = arg === undefined ? undefined : (py ? pyTemplate(arg) : tsTemplate(arg));
    // a message passed on from elsewhere (a variable) is counted where it is written
    if (text !== undefined) out.push({ file: path.relative(ROOT, file), line: lineOf(src, m.index!), text });
  }
  return out;
}

const firstString = (py: boolean) => (args: string[]) =>
  args.find((a) => (py ? /^[rRbBfF]{0,2}['"]/ : /^['"`]/).test(a)) ?? args[0];

function walk(dir: string, ext: RegExp): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "node_modules" ? [] : walk(path.join(dir, e.name), ext))
      : ext.test(e.name) ? [path.join(dir, e.name)] : []);
}

/** The program's messages: thrown errors, config problems, zod's messages (prefixed with their setting). */
export function programMessages(): Message[] {
  const files = [...walk(path.join(ROOT, "components"), /\.ts$/).filter((f) => !f.startsWith(SCRIPTS)),
    ...walk(path.join(ROOT, "cli"), /\.ts$/), ...walk(path.join(ROOT, "scripts"), /\.ts$/), path.join(ROOT, "index.ts")];
  return files.flatMap((f) => {
    const src = fs.readFileSync(f, "utf8");
    const found = [
      ...calls(f, src, /new (?:pulumi\.)?\w*Error\(/g, false, firstString(false)),
      ...calls(f, src, /\bproblems\.push\(/g, false, firstString(false)),
    ];
    if (f.endsWith(path.join("config", "schema.ts"))) {
      // zod's messages: parseConfig prints each after its setting (flask-deploy:KEY: …)
      const zod: Message[] = [];
      for (const m of src.matchAll(/(?:\bmessage: |\.regex\(\/(?:\\.|[^/\n])+\/\w*,\s*)(?=["'`])/g)) {
        const start = m.index! + m[0].length;
        const end = stringEnd(src, start, false);
        zod.push({ file: path.relative(ROOT, f), line: lineOf(src, m.index!), text: `{setting}: ${tsTemplate(src.slice(start, end))}` });
      }
      found.push(...zod);
    }
    return found;
  });
}

/** The agent's and migrate.py's: every raise of an error class the user reads, and each problem such a raise lists. */
export function agentMessages(): Message[] {
  const files = [...walk(path.join(SCRIPTS, "agent/fdeploy_agent"), /\.py$/), path.join(SCRIPTS, "migrate.py")];
  const srcs = files.map((f) => [f, fs.readFileSync(f, "utf8")] as const);
  // AgentError, the modules' own exceptions (migrate.py's Exit, the backup lease's Refused…) and their subclasses
  const user = new Set(["AgentError"]);
  // (backup_lease.py's are not: backup.py prints them after a first line of its own that names backup.replica)
  for (const [f, src] of srcs) if (!f.endsWith("backup_lease.py")) for (const m of src.matchAll(/^class (\w+)\(Exception\)/gm)) user.add(m[1]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [, src] of srcs) {
      for (const m of src.matchAll(/^class (\w+)\(([\w., ]+)\)/gm)) {
        if (!user.has(m[1]) && m[2].split(",").some((b) => user.has(b.trim().split(".").pop()!))) { user.add(m[1]); grew = true; }
      }
    }
  }
  // and the problems raised as a list whose first is the first line (migrate.py's errors follow a first line of their own)
  const re = new RegExp(`\\b(?:${[...user].join("|")}|problems\\.append|bad\\.append)\\(`, "g");
  return srcs.filter(([f]) => !f.endsWith("backup_lease.py"))
    .flatMap(([f, src]) => calls(f, src.replace(/^class .*$/gm, (l) => " ".repeat(l.length)), re, true, firstString(true)));
}
