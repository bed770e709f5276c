// A small, bounded HTTP load for e2e tests: requests to one test server URL, a few at a time,
// until stopped or the time limit passes. Counts failures (non-2xx and socket errors).
//
// Like a browser (RFC 9110 §9.2.2), a GET sent on a reused kept-alive connection that was closed
// before any byte of a response came back is retried once on a new connection: nginx closes idle
// keep-alive connections when it reloads its configuration. Only that case (node's `reusedSocket`):
// a reset of a new connection, or after part of a response, is a failure. The retry goes over a new
// connection of its own (a pooled one may have been closed by the same reload), must succeed, and
// retries are counted (tests/unit/load.test.ts).
import * as http from "http";

export interface LoadResult {
  requests: number;
  failures: number;
  errors: string[];
  maxLatencyMs: number;
  /** GETs retried after their idle connection was closed (each retry succeeded or is a failure). */
  retriedClosedConnections: number;
}

type Answer = { status: number; text(): Promise<string> };

/**
 * GET URL through AGENT (keep-alive pool, or false: a new connection of its own). An error carries
 * `retryable` when the request went out on a reused kept-alive connection that was closed before
 * any byte of a response came back — the only case a browser resends.
 */
function httpGet(url: string, agent: http.Agent | false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = http.get(url, { agent, timeout: 10000 }, (res) => {
      responded = true;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: async () => body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e: NodeJS.ErrnoException) => {
      const closed = e.code === "ECONNRESET" || e.code === "EPIPE" || e.message === "socket hang up";
      reject(Object.assign(e, { retryable: closed && !responded && req.reusedSocket }));
    });
  });
}

/**
 * Requests to URL from CONCURRENCY workers (default 4), each pausing PAUSEMS (default 40) after every
 * answer: ~80 requests/s through a test server — a request starts every ~12 ms, so a switch that drops
 * connections for longer than that is seen — at a third of the CPU the test server and this process
 * spent at the 10 ms pause the suites used before (~230 requests/s on every deploy under load).
 */
export function startLoad(url: string, opts: { concurrency?: number; maxSeconds?: number; pauseMs?: number } = {}) {
  const pauseMs = opts.pauseMs ?? 40;
  const deadline = Date.now() + (opts.maxSeconds ?? 120) * 1000;
  const result: LoadResult = { requests: 0, failures: 0, errors: [], maxLatencyMs: 0, retriedClosedConnections: 0 };
  const pool = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency ?? 4 });
  const get = async (retry: boolean): Promise<Answer> => {
    try {
      return await httpGet(url, pool);
    } catch (e) {
      if (!retry || !(e as any).retryable) throw e;
      result.retriedClosedConnections++;
      return httpGet(url, false);
    }
  };
  let stopped = false;
  const worker = async () => {
    while (!stopped && Date.now() < deadline) {
      const t0 = Date.now();
      try {
        const r = await get(true);
        await r.text();
        if (r.status < 200 || r.status >= 300) {
          result.failures++;
          if (result.errors.length < 10) result.errors.push(`HTTP ${r.status}`);
        }
      } catch (e) {
        result.failures++;
        if (result.errors.length < 10) result.errors.push(String((e as NodeJS.ErrnoException).code ?? e));
      }
      result.requests++;
      result.maxLatencyMs = Math.max(result.maxLatencyMs, Date.now() - t0);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, worker);
  return {
    async stop(): Promise<LoadResult> {
      stopped = true;
      await Promise.all(workers);
      pool.destroy();
      return result;
    },
  };
}
