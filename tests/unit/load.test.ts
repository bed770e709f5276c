// The e2e load client resends a GET only as a browser would: once, and only when it went out on a
// reused kept-alive connection that closed before any response. Against loopback servers that
// close connections on purpose.
import * as assert from "assert";
import * as http from "http";
import { AddressInfo } from "net";
import { startLoad } from "../e2e/load";

/** A server whose handler decides per request: answer, or drop the connection unanswered. */
async function server(drop: (nthOnSocket: number) => boolean): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer((req, res) => {
    const sock = req.socket as any;
    sock.served = (sock.served ?? 0) + 1;
    if (drop(sock.served)) return void req.socket.destroy();
    res.setHeader("connection", "keep-alive");
    res.end("ok");
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

describe("e2e load client: retries", () => {
  it("a kept-alive connection closed before its next answer (an nginx reload): resent once on a new connection, no failure", async () => {
    const srv = await server((n) => n === 2);   // each connection serves one request, then drops the next
    const load = startLoad(srv.url, { concurrency: 1, maxSeconds: 1 });
    await new Promise((r) => setTimeout(r, 500));
    const r = await load.stop();
    await srv.close();
    assert.ok(r.requests > 0);
    assert.ok(r.retriedClosedConnections > 0, "the closed kept-alive connection was not retried");
    assert.strictEqual(r.failures, 0, r.errors.join(", "));
  });

  it("a resend goes out once: when it fails too, the request failed (no second resend)", async () => {
    // only the first request of the first connection is answered: its second request (reused
    // connection) is resent once, on a new connection, which is dropped too
    let conns = 0;
    const s = http.createServer((req, res) => {
      const sock = req.socket as any;
      sock.id ??= ++conns;
      sock.served = (sock.served ?? 0) + 1;
      if (!(sock.id === 1 && sock.served === 1)) return void req.socket.destroy();
      res.setHeader("connection", "keep-alive");
      res.end("ok");
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const load = startLoad(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`, { concurrency: 1, maxSeconds: 1 });
    await new Promise((r) => setTimeout(r, 500));
    const r = await load.stop();
    await new Promise((r) => { s.closeAllConnections(); s.close(() => r(undefined)); });
    assert.ok(r.requests >= 2, `only ${r.requests} requests`);
    assert.strictEqual(r.retriedClosedConnections, 1, "the one reused connection's request was not resent exactly once");
    assert.strictEqual(r.failures, r.requests - 1, r.errors.join(", "));
  });

  it("a new connection dropped unanswered is a failure, never retried", async () => {
    const srv = await server(() => true);
    const load = startLoad(srv.url, { concurrency: 1, maxSeconds: 1 });
    await new Promise((r) => setTimeout(r, 500));
    const r = await load.stop();
    await srv.close();
    assert.ok(r.failures > 0);
    assert.strictEqual(r.failures, r.requests, "a dropped new connection passed");
    assert.strictEqual(r.retriedClosedConnections, 0, "a new connection's reset was retried");
  });
});
