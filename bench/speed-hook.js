// bench/speed.ts --profile: loaded into every Node.js process of one `pulumi up` (NODE_OPTIONS=--require):
// when the process started and ended, and how long the first load of a few big modules took
// (wall clock, ms since the epoch), appended as JSON lines to $FDEPLOY_SPEED_PROFILE.
const fs = require("fs");
const Module = require("module");
const out = process.env.FDEPLOY_SPEED_PROFILE;
if (out) {
  const t0 = performance.timeOrigin;
  const rec = { pid: process.pid, argv: process.argv.slice(1, 3).join(" "), processStart: t0, hookLoaded: t0 + performance.now(), requires: {} };
  const WATCH = ["@pulumi/pulumi", "@pulumi/command", "ts-node", "typescript", "zod", "./components/config", "./components/release"];
  const origLoad = Module._load;
  Module._load = function (request, parent, isMain) {
    const watched = WATCH.includes(request) && !(request in rec.requires);
    if (!watched) return origLoad.apply(this, arguments);
    const start = performance.now();
    try {
      return origLoad.apply(this, arguments);
    } finally {
      rec.requires[request] = { start: t0 + start, ms: Math.round(performance.now() - start) };
    }
  };
  process.on("exit", () => {
    rec.exit = t0 + performance.now();
    try { fs.appendFileSync(out, JSON.stringify(rec) + "\n"); } catch { /* best effort */ }
  });
}
