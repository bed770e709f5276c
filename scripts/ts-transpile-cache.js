// TypeScript transpiled once per content, for the program (`pulumi up`: Pulumi.yaml's nodeargs
// require scripts/ts-register.js) and for fdeploy and `npm run rollback|purge|backup`. Each file's
// JavaScript (source map inline) is kept in .fdeploy-staging/ts-cache/ (git-ignored) by a hash of
// the TypeScript version, the tsconfig files, the file's path and its text: an unchanged file costs
// one read, and TypeScript itself (0.25 s to load) is loaded only when a file is not in the cache.
// A file with syntax errors is never remembered (it is reported every time). Types are checked by
// `npm run build` (noCheck here). Plain JavaScript: it runs before anything can compile TypeScript.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const CACHE_DIR = path.join(ROOT, ".fdeploy-staging", "ts-cache");
/** An entry no run has used for this long is removed (once per process, on the first write). */
const STALE_MS = 7 * 24 * 60 * 60 * 1000;

/** { outputText, sourceMapText } of KEY from the cache, else compute() remembered (unless it has diagnostics). */
let pruned = false;
function cached(key, compute) {
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
  const out = compute();
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
}

const hash = (...parts) => crypto.createHash("sha256").update(parts.join("\0")).digest("hex");

/**
 * Node.js runs .ts files (outside node_modules) transpiled as tsconfig.deploy.json says, source maps
 * inline (stack traces name the .ts lines). The cache key needs no TypeScript: its version from its
 * package.json, the options as the two tsconfig files' text.
 */
exports.register = function register() {
  const tsconfig = path.join(ROOT, "tsconfig.deploy.json");
  const tsVersion = JSON.parse(fs.readFileSync(require.resolve("typescript/package.json", { paths: [ROOT] }), "utf8")).version;
  const salt = hash("fdeploy", tsVersion, fs.readFileSync(tsconfig, "utf8"), fs.readFileSync(path.join(ROOT, "tsconfig.json"), "utf8"));
  let ts, compilerOptions;
  const transpile = (input, fileName) => {
    if (!ts) {
      ts = require(require.resolve("typescript", { paths: [ROOT] }));
      const parsed = ts.getParsedCommandLineOfConfigFile(tsconfig, {}, {
        ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n")); },
      });
      compilerOptions = { ...parsed.options, module: ts.ModuleKind.CommonJS, sourceMap: false, inlineSourceMap: true, inlineSources: true, declaration: false, noEmit: false };
    }
    return ts.transpileModule(input, { fileName, compilerOptions, reportDiagnostics: true });
  };
  process.setSourceMapsEnabled(true);
  const jsLoader = require.extensions[".js"];
  require.extensions[".ts"] = function loadTs(module, fileName) {
    if (fileName.split(path.sep).includes("node_modules")) return jsLoader(module, fileName);
    const input = fs.readFileSync(fileName, "utf8");
    const out = cached(hash(salt, fileName, input), () => transpile(input, fileName));
    if (out.diagnostics && out.diagnostics.length) {
      const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => "\n" };
      throw new SyntaxError(`TypeScript could not transpile ${path.relative(ROOT, fileName)}:\n${ts.formatDiagnostics(out.diagnostics, host)}`);
    }
    module._compile(out.outputText, fileName);
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
