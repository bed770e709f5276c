// A small, bounded HTTP load for e2e tests: requests to one test server URL, a few at a time,
// until stopped or the time limit passes. Counts failures (non-2xx and socket errors).
//
// Like a browser (RFC 9110 §9.2.2), a GET whose kept-alive connection was closed before any byte of
// a response came back is retried once on a new connection: nginx closes idle keep-alive
// connections when it reloads its configuration. The retry goes over a new connection of its own (a
// pooled one may have been closed by the same reload), must succeed, and retries are counted.
import * as http from "http";

export interface LoadResult {
  requests: number;
  failures: number;
  errors: string[];
  maxLatencyMs: number;
  /** GETs retried after their idle connection was closed (each retry succeeded or is a failure). */
  retriedClosedConnections: number;
}

/** A connection closed with no response at all (not a status, not a timeout). */
function closedBeforeResponse(e: unknown): boolean {
  const code = (e as any)?.cause?.code;
  return code === "UND_ERR_SOCKET" || code === "ECONNRESET";
}

/** GET over a new connection of its own (no keep-alive pool). */
function freshGet(url: string): Promise<{ status: number; text(): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 10000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: async () => body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

export function startLoad(url: string, opts: { concurrency?: number; maxSeconds?: number } = {}) {
  const deadline = Date.now() + (opts.maxSeconds ?? 120) * 1000;
  const result: LoadResult = { requests: 0, failures: 0, errors: [], maxLatencyMs: 0, retriedClosedConnections: 0 };
  const get = async (retry: boolean): Promise<{ status: number; text(): Promise<string> }> => {
    try {
      return await fetch(url, { signal: AbortSignal.timeout(10000) });
    } catch (e) {
      if (!retry || !closedBeforeResponse(e)) throw e;
      result.retriedClosedConnections++;
      return freshGet(url);
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
        if (result.errors.length < 10) result.errors.push(String((e as Error).cause ?? e));
      }
      result.requests++;
      result.maxLatencyMs = Math.max(result.maxLatencyMs, Date.now() - t0);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, worker);
  return {
    async stop(): Promise<LoadResult> {
      stopped = true;
      await Promise.all(workers);
      return result;
    },
  };
}
