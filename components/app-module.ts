// Gunicorn's WSGI target forms (gunicorn.util.import_app): `module` (its `application`),
// `module:name`, `module:factory()` and a factory called with Python literal arguments,
// e.g. `pkg:create_app('prod', debug=False)`. parseAppModule checks the form before any server
// change; the preflight (scripts/preflight.py) really loads it with Gunicorn's own loader.

export interface AppModule {
  module: string;
  /** The attribute (default `application`). */
  name: string;
  /** `name(...)`: an app factory that Gunicorn calls. */
  factory: boolean;
}

const ident = /^[A-Za-z_][A-Za-z0-9_]*/;

/** The target, or a message saying what is wrong with it. */
export function parseAppModule(s: string): AppModule | string {
  const expected = "expected module:name, module:factory() or module:factory(literal args), e.g. wsgi:app or myapp:create_app()";
  const i = s.indexOf(":");
  const module = i < 0 ? s : s.slice(0, i);
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(module)) return expected;
  if (i < 0) return { module, name: "application", factory: false };
  const rest = s.slice(i + 1).trim();
  const m = ident.exec(rest);
  if (!m) return expected;
  const after = rest.slice(m[0].length).trim();
  if (after === "") return { module, name: m[0], factory: false };
  if (!after.startsWith("(") || !after.endsWith(")")) return expected;
  const problem = checkArgs(after.slice(1, -1));
  return problem ? `${problem} (Gunicorn takes only Python literals as factory arguments: strings, numbers, True/False/None, lists, tuples, dicts)` : { module, name: m[0], factory: true };
}

/** A tiny parser for Python literal arguments (what Gunicorn's ast.literal_eval accepts here). */
function checkArgs(src: string): string | undefined {
  let p = 0;
  const ws = () => { while (p < src.length && /\s/.test(src[p])) p++; };
  const err = (what: string) => { throw new Error(`${what} at position ${p} of the factory arguments`); };
  const literal = (): void => {
    ws();
    const c = src[p];
    if (c === "'" || c === '"') {
      p++;
      while (p < src.length && src[p] !== c) { if (src[p] === "\\") p++; if (src[p] === "\n") err("a newline"); p++; }
      if (p >= src.length) err("an unterminated string");
      p++;
      return;
    }
    if (c === "[" || c === "(" || c === "{") {
      const close = c === "[" ? "]" : c === "(" ? ")" : "}";
      p++; ws();
      while (src[p] !== close) {
        literal(); ws();
        if (c === "{") { if (src[p] !== ":") err("expected ':'"); p++; literal(); ws(); }
        if (src[p] === ",") { p++; ws(); } else if (src[p] !== close) err(`expected ',' or '${close}'`);
      }
      p++;
      return;
    }
    const m = /^-?(\d[\d_]*(\.\d*)?([eE][+-]?\d+)?|True|False|None)\b/.exec(src.slice(p));
    if (!m) err("not a literal");
    p += m![0].length;
  };
  try {
    ws();
    let kw = false;
    while (p < src.length) {
      const k = /^([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)/.exec(src.slice(p));
      if (k) { p += k[0].length; kw = true; } else if (kw) err("a positional argument after a keyword argument");
      literal(); ws();
      if (p < src.length) { if (src[p] !== ",") err("expected ','"); p++; ws(); }
    }
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/** The target as one word of a systemd ExecStart= line ("…" quoted only when needed). */
export function systemdWord(s: string): string {
  if (/^[A-Za-z0-9_.:()]+$/.test(s)) return s;
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$")}"`;
}
