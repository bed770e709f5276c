// npm run bench:fleet [-- --seconds 15 --connections 8]
// Scale out (README "Scale out", issue #32): requests/s through the HAProxy balancer and a code deploy's time
// (the whole `pulumi up` and its switch phase, the fleet-rollout step) with 1 app server, then 2, then 3; not part
// of npm test. Its own test servers (fe-b1, fe-b2, fe-b3 app servers: 10.213.0.236, .237, .239; fe-blb the
// balancer: .238), one stack: first one host behind the balancer, then each next added by one up. Bounded: each throughput window
// SECONDS long with CONNECTIONS keep-alive connections, each deploy's request loop at most 300 s. Writes
// bench/results/fleet.md with the commit, the dates, the load at start and end and the other test servers up.
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { TestStack, PROJECT_DIR } from "../tests/e2e/pulumi";
import { startLoad } from "../tests/e2e/load";
import { startServer, stopServer, TestServer } from "../tests/servers";
import { provenanceEnd, provenanceLine, provenanceStart } from "../tests/servers/provenance";

const arg = (name: string, dflt: number, max: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v <= 0 || v > max) throw new Error(`--${name}: expected a whole number from 1 to ${max}`);
  return v;
};
const SECONDS = arg("seconds", 15, 120), CONNECTIONS = arg("connections", 8, 64);
const RESULTS = path.join(__dirname, "results");
const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/fleet-app");
const REL = path.join(".e2e", "bench-fleet", "app");
const log = (s: string) => console.log(`[fleet ${new Date().toISOString().slice(11, 19)}] ${s}`);

/** Closed-loop throughput through URL for SECONDS with CONNECTIONS keep-alive connections: requests/s of 2xx answers, failures. */
async function throughput(url: string): Promise<{ rps: number; ok: number; failed: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const end = Date.now() + SECONDS * 1000;
  let ok = 0, failed = 0;
  const one = () => new Promise<void>((resolve) => {
    const req = http.get(url, { agent, timeout: 10000 }, (res) => {
      res.resume();
      res.on("end", () => { (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300 ? ok++ : failed++; resolve(); });
    });
    req.on("error", () => { failed++; resolve(); });
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => { while (Date.now() < end) await one(); }));
  agent.destroy();
  return { rps: ok / ((Date.now() - t0) / 1000), ok, failed };
}

interface Row { hosts: number; rps: number; deployS: number; switchS: number; rolloutS: number; requests: number; failed: number }

async function main(): Promise<void> {
  const own = (n: string) => /^fe-b/.test(n);
  const prov = provenanceStart(own);
  const t00 = Date.now();
  const apps = [startServer("fe-b1", 236), startServer("fe-b2", 237), startServer("fe-b3", 239)], lb = startServer("fe-blb", 238);
  const appDir = path.join(PROJECT_DIR, REL);
  fs.rmSync(path.dirname(appDir), { recursive: true, force: true });
  fs.mkdirSync(path.dirname(appDir), { recursive: true });
  fs.cpSync(FIXTURE, appDir, { recursive: true });
  const stack = new TestStack("bench-fleet");
  const host = (i: number, s: TestServer) => {
    stack.setConfig(`servers[${i}].host`, s.host);
    stack.setConfig(`servers[${i}].privateKeyPath`, s.keyPath);
    stack.setConfig(`servers[${i}].hostKey`, s.hostKey);
  };
  const rows: Row[] = [];
  const notes: string[] = [];
  let edits = 0;
  try {
    for (const [k, v] of Object.entries({ appName: "benchfleet", appDir: REL, migrationsDir: "none", "rollout.drainSeconds": "5",
      "loadBalancer.host": lb.host, "loadBalancer.privateKeyPath": lb.keyPath, "loadBalancer.hostKey": lb.hostKey })) stack.setConfig(k, v);
    stack.setConfig("secrets.SECRET_KEY", "bench-fleet", { secret: true });
    // never connected to (the bench reads `/` only)
    stack.setConfig("secrets.DATABASE_URL", "postgresql://benchfleet:pw@127.0.0.1/benchfleet", { secret: true });
    for (const n of [1, 2, 3]) {
      host(n - 1, apps[n - 1]);
      const t0 = Date.now();
      const first = stack.up();
      if (first.status !== 0) throw new Error(`the up to ${n} host(s) failed\n${first.output.slice(-3000)}`);
      log(`up to ${n} host(s): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await new Promise((r) => setTimeout(r, 4000));   // the balancer's checks: two passes a second apart
      const tp = await throughput(`http://${lb.host}/`);
      log(`${n} host(s): ${tp.rps.toFixed(0)} requests/s (${tp.failed} failed)`);
      // a code deploy under a request loop through the balancer
      const wsgi = path.join(appDir, "wsgi.py");
      fs.writeFileSync(wsgi, fs.readFileSync(wsgi, "utf8").replace(/"hello[^"]*"/, `"hello ${++edits}"`));
      const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 300, pauseMs: 10 });
      const t1 = Date.now();
      const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
      const deployS = (Date.now() - t1) / 1000;
      const result = await load.stop();
      if (r.status !== 0) throw new Error(`the code deploy to ${n} host(s) failed\n${r.output.slice(-3000)}`);
      const switchS = Number(/fleet-rollout updated \((\d+)s\)/.exec(r.output)?.[1] ?? NaN);
      // the rollout's own clock (agent fleet.py's last line), to a tenth of a second
      const rolloutS = Number(/the rollout took ([\d.]+) s/.exec(r.output)?.[1] ?? NaN);
      rows.push({ hosts: n, rps: tp.rps, deployS, switchS, rolloutS, requests: result.requests, failed: result.failures + tp.failed });
      log(`code deploy to ${n} host(s): ${deployS.toFixed(1)} s, switch ${switchS} s (rollout ${rolloutS} s); ${result.requests} requests, ${result.failures} failed`);
      // the rollout's own log (each phase's time, each host's lines), for where the time went
      for (const l of r.output.split("\n").filter((x) => /fleet-rollout updat/.test(x))) log(`  ${l.replace(/^.*?\)( \[diff: [^\]]*\])?;? ?/, "")}`);
    }
  } catch (e) {
    notes.push(`**The run stopped early:** ${String((e as Error).message ?? e).split("\n")[0]}`);
    console.error(e);
  } finally {
    stack.run(["destroy", "--yes", "--skip-preview"]);
    stack.remove();
    for (const s of ["fe-b1", "fe-b2", "fe-b3", "fe-blb"]) stopServer(s);
    fs.rmSync(path.dirname(appDir), { recursive: true, force: true });
  }
  provenanceEnd(prov, own);
  const [one, two, three] = rows;
  const ratio = (r: Row, k: "switchS" | "rolloutS") => (r[k] / one[k]).toFixed(2);
  const lines = [
    "# Scale out: 1, 2 and 3 app servers behind the balancer (`npm run bench:fleet`)", "",
    "Written by `npm run bench:fleet` (bench/fleet.ts): one stack, first one app server behind HAProxy, then a second and a third, each added by one up;",
    "each size measured once in the same run. Every server is a systemd-nspawn machine on this one host, so the hosts share its CPUs:",
    "another host adds no CPU, and the requests/s show the balancer's overhead and spread, not a multiple.", "",
    `- **the run**: ${provenanceLine(prov)}`,
    `- **load**: requests/s: closed loop for ${SECONDS} s with ${CONNECTIONS} keep-alive connections through the balancer to \`/\`; ` +
      `during each code deploy: a loop of 4 connections through the balancer (at most 300 s); the whole run ${((Date.now() - t00) / 60000).toFixed(1)} min`,
    ...notes.map((x) => `- ${x}`), "",
    "The switch phase is the fleet-rollout step as `pulumi up` reports it (whole seconds); the rollout, its own clock inside that step.", "",
    "| app servers | requests/s through the balancer | code deploy (s) | switch phase (s) | the rollout (s) | requests during the deploy | failed requests |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.hosts} | ${r.rps.toFixed(0)} | ${r.deployS.toFixed(1)} | ${r.switchS} | ${r.rolloutS.toFixed(1)} | ${r.requests} | ${r.failed} |`), "",
    ...(one && two ? [`The switch phase with 2 hosts takes ${ratio(two, "switchS")}× that with 1 host (the rollout ${ratio(two, "rolloutS")}×).`] : []),
    ...(one && three ? [`The switch phase with 3 hosts takes ${ratio(three, "switchS")}× that with 1 host (the rollout ${ratio(three, "rolloutS")}×; goal ≤ 1.5×, issue #32).`] : []), "",
  ];
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, "fleet.md"), lines.join("\n"));
  log(`bench/results/fleet.md written\n${lines.join("\n")}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
