// bench/load.ts — a bounded, fixed-rate HTTP load against ONE disposable test server (10.213.0.X).
//
//   node -r ts-node/register/transpile-only bench/load.ts --base http://10.213.0.70 \
//     [--paths /,/health] [--rate 50] [--connections 4] [--timeout 10] [--warmup 1] \
//     [--max-seconds 600] --out FILE.json
//
// - Open loop: request n is due at start + n/rate, whatever happened to earlier ones, so a stall
//   on the server shows up as latency (measured from the moment the request was due) instead of
//   as fewer requests ("coordinated omission").
// - Keep-alive like a browser: at most --connections persistent connections; a due request waits
//   for a free one. A request that has no complete response --timeout seconds after it was due is
//   aborted and counted as failed ("timeout").
// - Failed = any non-2xx status or any socket error (reset, refused, timeout, …).
// - Bounded: stops by itself after --max-seconds (and so after at most rate × max-seconds
//   requests); "stop" on stdin or SIGTERM/SIGINT stops it earlier. Then it waits for the requests
//   in flight (each bounded by --timeout), writes --out and exits.
// - stdin lines: "mark NAME" records the time of an event (e.g. the deploy's start and end);
//   stdout: "ready" once --warmup seconds of load have been sent.
// - Refuses any target but http://10.213.0.X (the private test-server bridge of
//   tests/servers/testserver.sh): this is never pointed at anything else.
import * as fs from "fs";
import * as http from "http";
import * as readline from "readline";

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) {
    console.error(`load.ts: --${name} is required`);
    process.exit(2);
  }
  return def;
}

function num(name: string, def: string, min: number, max: number): number {
  const v = Number(arg(name, def));
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`load.ts: --${name} must be a number in [${min}, ${max}]`);
    process.exit(2);
  }
  return v;
}

const base = new URL(arg("base"));
const octet = /^10\.213\.0\.(\d{1,3})$/.exec(base.hostname);
if (base.protocol !== "http:" || !octet || Number(octet[1]) < 2 || Number(octet[1]) > 254 || (base.port && base.port !== "80")) {
  console.error(`load.ts: refusing target ${base.href}: only http://10.213.0.X (test servers) is allowed`);
  process.exit(2);
}
const paths = arg("paths", "/,/health").split(",");
if (!paths.every((p) => /^\/[A-Za-z0-9._~\/-]*$/.test(p))) {
  console.error("load.ts: --paths must be comma-separated URL paths");
  process.exit(2);
}
const rate = num("rate", "50", 1, 200);
const connections = num("connections", "4", 1, 16);
const timeoutMs = num("timeout", "10", 1, 60) * 1000;
const warmupMs = num("warmup", "1", 0, 10) * 1000;
const maxMs = num("max-seconds", "600", 1, 1800) * 1000;
const out = arg("out");

const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: "fifo" });

// one row per request: [due ms since start, latency ms (from due to end of body), outcome, path index]
// outcome: the HTTP status (number), or a socket error code / "timeout" (string)
type Row = [number, number, number | string, number];
const rows: Row[] = [];
const marks: { name: string; t: number }[] = [];
let newConnections = 0;
let inFlight = 0;
let stopping = false;
const t0 = performance.now();
const startedAt = new Date().toISOString();
const now = () => performance.now() - t0;

// Like a browser (RFC 9110 §9.2.2), a GET sent on a reused keep-alive connection that the server
// closed before any byte of a response came back (nginx closes idle keep-alive connections when it
// reloads) is sent once more, on a new connection of its own (a pooled one may have been closed by
// the same reload); its latency still counts from when it was due.
let retriedClosedConnections = 0;

function fire(due: number, pathIndex: number, retry = true): void {
  // retry === false: the resend, over a connection of its own
  inFlight++;
  let finished = false;
  const finish = (outcome: number | string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    rows.push([Math.round(due), Math.round((now() - due) * 10) / 10, outcome, pathIndex]);
    inFlight--;
    if (stopping && inFlight === 0) write();
  };
  const req = http.request({
    host: base.hostname, port: 80, path: paths[pathIndex], agent: retry ? agent : false,
    headers: { "User-Agent": "fdeploy-bench/1", Accept: "text/html,application/json" },
  });
  // the deadline counts from when the request was due, including any wait for a free connection
  const timer = setTimeout(() => { finish("timeout"); req.destroy(); }, Math.max(1, due + timeoutMs - now()));
  req.on("socket", (s) => { if (!(s as any).__benchSeen) { (s as any).__benchSeen = true; newConnections++; } });
  req.on("response", (res) => {
    res.on("data", () => undefined);
    res.on("end", () => finish(res.statusCode ?? 0));
    res.on("error", (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
  let responded = false;
  req.on("response", () => { responded = true; });
  req.on("error", (e: NodeJS.ErrnoException) => {
    if (retry && !finished && !responded && req.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE")) {
      finished = true; clearTimeout(timer); inFlight--;
      retriedClosedConnections++;
      fire(due, pathIndex, false);
      return;
    }
    finish(e.code ?? e.message);
  });
  req.end();
}

const interval = 1000 / rate;
let n = 0;
function tick(): void {
  if (stopping) return;
  const t = now();
  if (t >= maxMs) { stop("max-seconds reached"); return; }
  while (n * interval <= t) { fire(n * interval, n % paths.length); n++; }
  setTimeout(tick, Math.max(0, n * interval - now()));
}

let stopReason = "";
function stop(reason: string): void {
  if (stopping) return;
  stopping = true;
  stopReason = reason;
  if (inFlight === 0) write();
}

let written = false;
function write(): void {
  if (written) return;
  written = true;
  agent.destroy();
  const result = {
    base: base.origin, paths, rate, connections, timeoutMs, startedAt,
    durationMs: Math.round(now()), stopReason, newConnections, retriedClosedConnections, marks, rows,
  };
  fs.writeFileSync(out, JSON.stringify(result));
  process.exit(0);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, name] = line.trim().split(/\s+/, 2);
  if (cmd === "mark" && name) marks.push({ name, t: Math.round(now()) });
  else if (cmd === "stop") stop("stopped");
}).on("close", () => stop("stdin closed"));
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => stop(sig));
setTimeout(() => { if (!stopping) console.log("ready"); }, warmupMs);
tick();
