// Reliability and security suite: real `pulumi up` against one disposable Debian server that
// already runs a deployment, through bad configuration, injection attempts, secret handling,
// faults in the middle of deploys, concurrent deploys and a changed SSH host key. Every successful
// up is followed by an up that must change nothing. The after() hook writes the table, one row per
// case, to .e2e/reports/reliability.md; `npm run report:reliability` refreshes docs/reliability.md.
//
// The cases live in tests/e2e/reliability/*.ts (plain modules, not *.test.ts: they run only from
// here, in this order, sharing the server and the stack).
import * as assert from "assert";
import * as path from "path";
import { startServer } from "../servers";
import { provenanceEnd, provenanceStart } from "../servers/provenance";
import { copyApp, copyMigrations } from "./app-copy";
import { PROJECT_DIR, TestStack } from "./pulumi";
import { addNote, Ctx, health, upConverges, writeTable } from "./reliability/harness";
import { badConfigCases } from "./reliability/config-cases";
import { injectionCases, secretCases } from "./reliability/data-cases";
import { faultCases } from "./reliability/fault-cases";
import { concurrencyCases, trustCases, sandboxCases, idempotencySummary } from "./reliability/concurrency-cases";

const SERVER_NAME = "rel-main";
const SERVER_OCTET = 80;

/** Test-only route of the copied app: the INJ_* environment the app process really sees. */
const ENV_ROUTE = `
# rel-env: what the app process sees of the values the suite sends (test-only route)
import os as _os


@app.get("/api/env")
def rel_env():
    return {k: v for k, v in _os.environ.items() if k.startswith("INJ")}
`;

describe("reliability and security (real pulumi up against a test server)", function () {
  this.timeout(900000);
  const ctx = {} as Ctx;
  const startedAt = new Date();
  const ownServer = (n: string) => n === SERVER_NAME;
  const provenance = provenanceStart(ownServer);

  before(async function () {
    this.timeout(300000);
    ctx.server = startServer(SERVER_NAME, SERVER_OCTET);
    ctx.base = `http://${ctx.server.host}`;
    ctx.app = copyApp("rel");
    ctx.app.edit("wsgi.py", (s) => s + ENV_ROUTE);
    ctx.migrations = copyMigrations("rel");
    ctx.stack = new TestStack("rel");
    ctx.settings = {
      appDir: ctx.app.rel,
      migrationsDir: ctx.migrations.rel,
      healthTimeoutSeconds: "10",
      "env.APP_GREETING": "Hello from the reliability suite",
    };
    ctx.stack.target(ctx.server, ctx.settings);
    ctx.stack.setConfig("secrets.SECRET_KEY", "reliability-initial-secret", { secret: true });
    await upConverges(ctx, "first deploy");
    assert.strictEqual((await health(ctx)).status, 200);
    await addNote(ctx, "written before the suite");
  });

  after(function () {
    // a test run leaves the tree as it was: the table goes to .e2e/ (git-ignored) unless
    // `npm run report:reliability` asks for the committed docs/reliability.md
    writeTable(path.resolve(PROJECT_DIR, process.env.FDEPLOY_RELIABILITY_REPORT ?? ".e2e/reports/reliability.md"), {
      startedAt, seconds: (Date.now() - startedAt.getTime()) / 1000, server: `${SERVER_NAME} (10.213.0.${SERVER_OCTET})`,
      provenance: provenanceEnd(provenance, ownServer),
    });
    ctx.stack?.remove();
  });

  describe("1. bad configuration", () => badConfigCases(ctx));
  describe("2. injection", () => injectionCases(ctx));
  describe("3. secrets", () => secretCases(ctx));
  describe("4. faults", () => faultCases(ctx));
  describe("5. concurrency", () => concurrencyCases(ctx));
  describe("6. SSH trust", () => trustCases(ctx));
  describe("7. sandbox", () => sandboxCases(ctx));
  describe("8. idempotency", () => idempotencySummary(ctx));
});
