// A ts-node transpiler (tsconfig.deploy.json, "ts-node": {"transpiler": …}) that remembers its output:
// TypeScript's own transpileModule — what ts-node runs without it — but each file's JavaScript and
// source map are kept in .fdeploy-staging/ts-cache/ (git-ignored) by a hash of the TypeScript
// version, the compiler options, the file's path and its text. Every `pulumi up` (and fdeploy)
// transpiled all of index.ts and components/ again: 0.3–0.8 s quiet, seconds on a loaded machine;
// an unchanged file now costs one read. A file with syntax errors is never remembered (ts-node
// reports them every time). Types are checked by `npm run build`, as before (noCheck).
// Plain JavaScript: ts-node loads it before it can compile anything.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const CACHE_DIR = path.resolve(__dirname, "..", ".fdeploy-staging", "ts-cache");
/** An entry no run has used for this long is removed (once per process, on the first write). */
const STALE_MS = 7 * 24 * 60 * 60 * 1000;

exports.create = function create({ service }) {
  const ts = require(service.projectLocalResolveHelper(service.options.compiler || "typescript", true));
  const compilerOptions = service.config.options;
  const salt = `${ts.version}\0${JSON.stringify(compilerOptions)}\0`;
  let pruned = false;
  return {
    transpile(input, { fileName }) {
      const key = crypto.createHash("sha256").update(salt).update(fileName).update("\0").update(input).digest("hex");
      const file = path.join(CACHE_DIR, `${key.slice(0, 32)}.json`);
      try {
        const hit = JSON.parse(fs.readFileSync(file, "utf8"));
        if (hit.key === key && typeof hit.outputText === "string") {
          const now = new Date();
          fs.utimesSync(file, now, now);
          return { outputText: hit.outputText, sourceMapText: hit.sourceMapText };
        }
      } catch {
        // not transpiled yet (or unreadable): transpile now
      }
      const out = ts.transpileModule(input, { fileName, compilerOptions, reportDiagnostics: true });
      if (out.diagnostics && out.diagnostics.length) return out;
      try {
        fs.mkdirSync(CACHE_DIR, { recursive: true });
        if (!pruned) prune();
        pruned = true;
        const tmp = `${file}.tmp-${process.pid}`;
        fs.writeFileSync(tmp, JSON.stringify({ key, outputText: out.outputText, sourceMapText: out.sourceMapText }));
        fs.renameSync(tmp, file);
      } catch {
        // a read-only project folder: transpiled every time, as without the cache
      }
      return out;
    },
  };
};

function prune() {
  const now = Date.now();
  for (const name of fs.readdirSync(CACHE_DIR)) {
    try {
      const p = path.join(CACHE_DIR, name);
      if (now - fs.statSync(p).mtimeMs > STALE_MS) fs.rmSync(p, { force: true });
    } catch {
      // removed meanwhile by a parallel run
    }
  }
}
