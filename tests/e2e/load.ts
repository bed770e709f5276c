// A small, bounded HTTP load for e2e tests: requests to one test server URL, a few at a time,
// until stopped or the time limit passes. Counts failures (non-2xx and socket errors).
//
// Like a browser (RFC 9110 §9.2.2), a GET whose kept-alive connection was closed before any byte of
// a response came back is retried: nginx closes idle keep-alive connections when it reloads its
// configuration. The retry may pick another idle connection of the same pool that the same reload
// is closing, so up to MAX_RETRIES retries (each attempt drops one dead connection; the pool holds
// at most `concurrency`). The last retry must succeed, and retries are counted.
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

const MAX_RETRIES = 2;

export function startLoad(url: string, opts: { concurrency?: number; maxSeconds?: number } = {}) {
  const deadline = Date.now() + (opts.maxSeconds ?? 120) * 1000;
  const result: LoadResult = { requests: 0, failures: 0, errors: [], maxLatencyMs: 0, retriedClosedConnections: 0 };
  const get = async (retriesLeft: number): Promise<Response> => {
    try {
      return await fetch(url, { signal: AbortSignal.timeout(10000) });
    } catch (e) {
      if (retriesLeft === 0 || !closedBeforeResponse(e)) throw e;
      result.retriedClosedConnections++;
      return get(retriesLeft - 1);
    }
  };
  let stopped = false;
  const worker = async () => {
    while (!stopped && Date.now() < deadline) {
      const t0 = Date.now();
      try {
        const r = await get(MAX_RETRIES);
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
