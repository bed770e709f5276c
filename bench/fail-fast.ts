// npm run bench:fail-fast [-- --runs 3] — how fast a deploy of a release that cannot start fails,
// per strategy (the state-truth issue's "reported within 5 s"). One test server (bench-ff,
// 10.213.0.74) with the sample app; each run deploys a release whose module raises at import, and
// reads two times: the detection time activate.sh reports ("… after Ns": from the slot's start,
// or the preflight's, to the verdict) and the whole failing `pulumi up` (upload, venv, the check).
// Writes bench/results/fail-fast.md; asserts nothing beyond the deploy failing.
import * as fs from "fs";
import * as path from "path";
import { deployFresh } from "../tests/e2e/fixture";
import { stopAll } from "../tests/servers";
import { provenanceEnd, provenanceLine, provenanceStart } from "../tests/servers/provenance";

const RUNS = Number(process.argv[process.argv.indexOf("--runs") + 1] || 3);
const OUT = path.join(__dirname, "results", "fail-fast.md");

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0].toFixed(1)} / ${s[Math.floor(s.length / 2)].toFixed(1)} / ${s[s.length - 1].toFixed(1)}`;
};

async function main(): Promise<void> {
  const own = (n: string) => n === "bench-ff";
  const prov = provenanceStart(own);
  const { stack, app } = deployFresh("bench-ff", 74, { healthTimeoutSeconds: "120" });
  const rows: string[] = [];
  try {
    for (const strategy of ["restart", "rolling", "blue-green"]) {
      stack.setConfig("strategy", strategy);
      const detect: number[] = [], whole: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        app.edit("wsgi.py", (s) => s + `\nraise RuntimeError('broken on purpose ${strategy} ${i}')\n`);
        const t0 = Date.now();
        const r = stack.up();
        whole.push((Date.now() - t0) / 1000);
        app.edit("wsgi.py", (s) => s.replace(/\nraise RuntimeError\('broken on purpose [^\n]*\n$/, ""));
        if (r.status === 0) throw new Error(`${strategy}: the broken release went live:\n${r.output.slice(-2000)}`);
        // the slot's verdict names its time; the preflight (the release loaded before any slot
        // starts) refuses it with no time of its own: only the whole up is timed then
        const m = /(?:failed to load|exited[^\n]*?) after (\d+)s/.exec(r.output);
        if (!m && !/does not load/.test(r.output)) throw new Error(`${strategy}: neither a detection time nor the preflight's refusal in the output:\n${r.output.slice(-3000)}`);
        if (m) detect.push(Number(m[1]));
        console.log(`${strategy} run ${i + 1}: ${m ? `detected after ${m[1]} s` : "refused by the preflight"}, failing up ${whole.at(-1)!.toFixed(1)} s`);
      }
      rows.push(`| ${strategy} | ${RUNS} | ${detect.length ? stats(detect) : "— (the preflight refused it before a slot started)"} | ${stats(whole)} |`);
    }
  } finally {
    stack.remove();
    stopAll();
  }
  provenanceEnd(prov, own);
  const md = [
    "# Time to fail: a release whose process dies at once",
    "",
    `Written by \`npm run bench:fail-fast\` (health timeout 120 s, ${RUNS} runs each).`,
    "",
    provenanceLine(prov),
    "",
    "Detection: from the slot's start (restart: the preflight's) to the verdict, as activate.sh reports it",
    "(whole seconds). Failing up: the whole `pulumi up`, including the upload and the venv of the new release.",
    "",
    "| strategy | runs | detection s (min / median / max) | failing up s (min / median / max) |",
    "|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, md);
  console.log(`\n${md}\nwritten to ${path.relative(process.cwd(), OUT)}`);
}

main().catch((e) => {
  console.error(e);
  stopAll();
  process.exit(1);
});
