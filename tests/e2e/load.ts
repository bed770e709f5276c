// A small, bounded HTTP load for e2e tests: requests to one test server URL, a few at a time,
// until stopped or the time limit passes. Counts failures (non-2xx and socket errors).
export interface LoadResult {
  requests: number;
  failures: number;
  errors: string[];
  maxLatencyMs: number;
}

export function startLoad(url: string, opts: { concurrency?: number; maxSeconds?: number } = {}) {
  const deadline = Date.now() + (opts.maxSeconds ?? 120) * 1000;
  const result: LoadResult = { requests: 0, failures: 0, errors: [], maxLatencyMs: 0 };
  let stopped = false;
  const worker = async () => {
    while (!stopped && Date.now() < deadline) {
      const t0 = Date.now();
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(10000) });
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
