// Scale out (README "Scale out"): one app on two, then three servers behind an HAProxy balancer the stack
// manages, its data on a PostgreSQL server the stack manages (servers fl-app1, fl-app2, fl-lb, fl-db,
// fl-app3: octets 225-229). One up deploys both hosts, the balancer and the app's database; a code deploy
// under a read and a write loop through the balancer fails no request, keeps every row either host wrote,
// and holds every host's deploy lease for the whole rollout; under the same loops, a release with a PostgreSQL
// migration (its .postgres pair run once, by the first host, before the switch) fails no request and loses no
// row; a third server joins (no replace or delete of the others) while `fdeploy rollback --to` the release
// before the migration, started once the join's fleet switch runs, waits for it (naming that deploy: the
// fdeploy lease), then moves every host to that release — the third, which never ran it, gets it copied from
// the first — and brings the schema down, then `--forward` returns: 0 failed requests, no row lost; with
// three hosts in batches of two, a release (with a new env value) that fails its health check through the third
// host's nginx once it switched stops the rollout, all three go back to their release AND their environment
// (the fleet rollout flips each back to the slot it kept), no row is lost, and
// the outputs and a preview show the previous release everywhere; strategy canary across the hosts: the first
// host takes 20 % of the requests at the balancer (HAProxy's weights) for a 5 s step gated on HAProxy's log, then
// the others roll (0 failed reads, its share in the step 12-28 %), and a release answering 500 to 3 in 10 requests
// of one route aborts at that step with every host and weight back (96 s for both, at load ~9-15).
// Time: 14 min at load average ~9-15 with the canary case (2026-12-07); 7 min at load average ~5-6 (other suites running): first up 57 s, code deploy 24 s, the deploy with a
// migration 28 s, the join with the rollback waiting for it, then --forward, 185 s (the rollback done 77 s after
// the join's up), the failed 3-host rollout 40 s. Before the rollback case moved after the join: 8 min 7 s at 7-10.
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { addWheels, startServer, TestServer } from "../servers";
import { get } from "./app-copy";
import { startLoad } from "./load";
import { changed, PROJECT_DIR, RunResult, TestStack } from "./pulumi";

const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/fleet-app");
const UNHEALTHY = "/etc/fl-unhealthy";   // the broken release fails its health check where this file exists
const SCHEMA_COMMAND = "python -c \"import os, psycopg; c = psycopg.connect(os.environ['DATABASE_URL']); c.execute(open('pg-schema.sql').read()); c.commit()\"";

/** POSTs of notes through URL, one at a time, until stopped: the ids the app acknowledged, what failed. */
function startWrites(url: string, maxSeconds = 300) {
  const acked: number[] = [], errors: string[] = [], hosts = new Set<string>();
  const deadline = Date.now() + maxSeconds * 1000;
  let stopped = false;
  const one = () => new Promise<void>((resolve) => {
    const req = http.request(url, { method: "POST", timeout: 10000, headers: { "content-type": "application/json", connection: "close" } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        if (res.statusCode === 201) {
          const j = JSON.parse(text);
          acked.push(j.id);
          hosts.add(j.host);
        } else errors.push(`${res.statusCode}: ${text.slice(0, 120)}`);
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => { errors.push(e.message); resolve(); });
    req.end(JSON.stringify({ body: `note ${acked.length}` }));
  });
  const loop = (async () => {
    while (!stopped && Date.now() < deadline) {
      await one();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { async stop() { stopped = true; await loop; return { acked, errors, hosts: [...hosts].sort() }; } };
}

describe("scale out: app servers behind HAProxy, the data on PostgreSQL", function () {
  this.timeout(900000);
  let app1: TestServer, app2: TestServer, app3: TestServer, lb: TestServer, db: TestServer;
  let stack: TestStack;
  const rel = path.join(".e2e", "fleet", "app");
  const appDir = path.join(PROJECT_DIR, rel);
  const wsgi = path.join(appDir, "wsgi.py");
  const editApp = (f: (s: string) => string) => fs.writeFileSync(wsgi, f(fs.readFileSync(wsgi, "utf8")));
  /** Migration NNNN_NAME in the app's migrations folder: its plain pair (SQLite's) and its PostgreSQL pair. */
  const addMigration = (name: string, sql: { up: string; down: string; pgUp: string; pgDown: string }) => {
    const dir = path.join(appDir, "migrations");
    fs.mkdirSync(dir, { recursive: true });
    for (const [suffix, text] of [["up", sql.up], ["down", sql.down], ["postgres.up", sql.pgUp], ["postgres.down", sql.pgDown]]) {
      fs.writeFileSync(path.join(dir, `${name}.${suffix}.sql`), `${text}\n`);
    }
  };
  const psql = (sql: string) => db.ssh("runuser -u postgres -- psql -X -At -d fleetapp", sql).trim();
  const hasTag = () => psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tag'") === "1";
  const dumpsOn = (s: TestServer) => Number(s.ssh("ls /srv/fleetapp/shared/backups/ | grep -c '\\.pgdump$' || true").trim());
  const releaseOn = async (host: string) => (await get(`http://${host}/health`)).json().release as string;
  const quote = (s: string) => s.replace(/\./g, "\\.");
  const agentDir = (s: TestServer) => s.ssh("ls -td /root/.fdeploy/fleetapp/scripts-* | head -1").trim();
  // the balancer's view: each host's state in HAProxy (the agent's lb-status on the balancer)
  const balancerStatus = (): Record<string, string> => {
    const r = JSON.parse(lb.ssh(`python3 -I -B ${agentDir(lb)}/agent lb-status`, JSON.stringify({ APP: "fleetapp" })).trim().split("\n").pop()!);
    return Object.fromEntries(Object.entries(r.servers).map(([k, v]: [string, any]) => [k, v.status]));
  };
  const waitAllUp = async (names: string[]) => {   // the balancer checks each host every second and needs two passes
    const deadline = Date.now() + 15000;
    while (Object.values(balancerStatus()).some((s) => !s.startsWith("UP")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    assert.deepStrictEqual(balancerStatus(), Object.fromEntries(names.map((n) => [n, "UP"])));
  };
  const noteIds = () => new Set(db.ssh("runuser -u postgres -- psql -X -At -d fleetapp", "SELECT id FROM notes").trim().split("\n").filter(Boolean).map(Number));
  const assertKept = (acked: number[]) => {
    const ids = noteIds();
    const lost = acked.filter((id) => !ids.has(id));
    assert.deepStrictEqual(lost, [], `${lost.length} of ${acked.length} acknowledged notes are not in the database`);
  };
  const envOn = (s: TestServer) => s.ssh("cat /etc/fdeploy/fleetapp/env");
  /** RUN (an up, a rollback) under a read loop and a write loop through the balancer: its result, its seconds, what the loops saw. */
  const underLoad = async (run: () => Promise<RunResult>) => {
    const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 240 });
    const writes = startWrites(`http://${lb.host}/notes`);
    const t0 = Date.now();
    const r = await run();
    const seconds = Math.round((Date.now() - t0) / 1000);
    return { r, seconds, reads: await load.stop(), written: await writes.stop() };
  };
  const assertNoneFailed = (what: string, l: Awaited<ReturnType<typeof underLoad>>) => {
    console.log(`      ${what}: ${l.seconds} s; ${l.reads.requests} reads and ${l.written.acked.length} writes through the balancer, ` +
      `${l.reads.failures + l.written.errors.length} failed, max ${l.reads.maxLatencyMs} ms`);
    assert.strictEqual(l.reads.failures, 0, l.reads.errors.join(", "));
    assert.deepStrictEqual(l.written.errors, []);
    assert.ok(l.reads.requests > 50 && l.written.acked.length > 10, `${l.reads.requests} reads, ${l.written.acked.length} writes`);
    assertKept(l.written.acked);
  };
  /** Every host of SERVERS (and the hosts output) on RELEASE, at schema version SCHEMA in the database. */
  const assertFleetOn = async (release: string, schema: number, servers = [app1, app2]) => {
    const out = stack.outputs();
    assert.deepStrictEqual([out.releaseId, out.schemaVersion], [release, schema]);
    assert.deepStrictEqual(out.hosts, Object.fromEntries(servers.map((s) => [s.host, release])));
    for (const s of servers) assert.strictEqual(await releaseOn(s.host), release, s.name);
    assert.strictEqual(psql("SELECT max(version) FROM schema_migrations"), String(schema));
  };
  const setServer = (i: number, s: TestServer) => {
    stack.setConfig(`servers[${i}].host`, s.host);
    stack.setConfig(`servers[${i}].privateKeyPath`, s.keyPath);
    stack.setConfig(`servers[${i}].hostKey`, s.hostKey);
  };
  /**
   * A release that fails its health check where UNHEALTHY exists, with a new greeting in its environment —
   * only through the host's nginx (which sets X-Forwarded-For): the balancer's check after the host's switch
   * fails, while the rollout's prepare and flip, which ask the slot's own socket, pass. So the host fails
   * after it switched, and every host that had switched goes back (a release failing the slot's own check
   * fails at the prepare, before any host switched: pytest, test_agent_fleet.py).
   */
  const breakRelease = () => {
    editApp((s) => s.replace('def health():\n', `def health():\n    if os.path.exists("${UNHEALTHY}") and __import__("flask").request.headers.get("X-Forwarded-For"):\n` +
      `        return jsonify(status="error"), 503\n`));
    stack.setConfig("env.APP_GREETING", "hello broken");
  };
  const unbreakRelease = (good: string) => {
    fs.writeFileSync(wsgi, good);
    stack.mustRun(["config", "rm", "--path", "env.APP_GREETING"]);
  };

  before(() => {
    addWheels(path.join(FIXTURE, "requirements.txt"));
    db = startServer("fl-db", 228, { image: "postgres" });
    app1 = startServer("fl-app1", 225);
    app2 = startServer("fl-app2", 226);
    app3 = startServer("fl-app3", 229);
    lb = startServer("fl-lb", 227);
    fs.rmSync(appDir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(appDir), { recursive: true });
    fs.cpSync(FIXTURE, appDir, { recursive: true });
    addMigration("0001_create_notes", {
      up: "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, host TEXT NOT NULL);", down: "DROP TABLE notes;",
      pgUp: fs.readFileSync(path.join(FIXTURE, "pg-schema.sql"), "utf8").trim(), pgDown: "DROP TABLE notes;",
    });
    stack = new TestStack("fleet");
    const settings: Record<string, string> = {
      appName: "fleetapp", appDir: rel, migrationsDir: path.join(rel, "migrations"), healthTimeoutSeconds: "5", "rollout.drainSeconds": "2",
      "releaseCommands[0]": SCHEMA_COMMAND, "database.engine": "postgres",
      "database.host.host": db.host, "database.host.privateKeyPath": db.keyPath, "database.host.hostKey": db.hostKey,
      "loadBalancer.host": lb.host, "loadBalancer.privateKeyPath": lb.keyPath, "loadBalancer.hostKey": lb.hostKey,
    };
    for (const [k, v] of Object.entries(settings)) stack.setConfig(k, v);
    setServer(0, app1);
    setServer(1, app2);
    stack.setConfig("secrets.SECRET_KEY", "fleet-secret", { secret: true });
    stack.setConfig("databasePassword", "fleet-db-password-0123456789", { secret: true });
  });
  after(() => {
    stack?.remove();
    fs.rmSync(path.dirname(appDir), { recursive: true, force: true });
  });

  it("one up deploys the release on both servers, HAProxy in front and the app's database; both serve and write through the balancer", async () => {
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      first up: ${Math.round((Date.now() - t0) / 1000)} s`);
    const out = stack.outputs();
    assert.deepStrictEqual(out.hosts, { [app1.host]: out.releaseId, [app2.host]: out.releaseId });
    assert.strictEqual(out.server, `root@${app1.host}:22, root@${app2.host}:22`);
    assert.strictEqual(await releaseOn(app1.host), out.releaseId);
    assert.strictEqual(await releaseOn(app2.host), out.releaseId);
    await waitAllUp(["h1", "h2"]);
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const h = (await get(`http://${lb.host}/`)).json();
      assert.strictEqual(h.release, out.releaseId);
      served.add(h.host);
    }
    assert.deepStrictEqual([...served].sort(), ["fl-app1", "fl-app2"], "round robin over both hosts");
    // both hosts write to the one database (pg_hba lets each host's address in)
    const w = startWrites(`http://${lb.host}/notes`);
    await new Promise((res) => setTimeout(res, 1500));
    const written = await w.stop();
    assert.deepStrictEqual(written.errors, []);
    assert.deepStrictEqual(written.hosts, ["fl-app1", "fl-app2"]);
    assertKept(written.acked);
    assert.match(lb.ssh("haproxy -c -f /etc/haproxy/haproxy.cfg 2>&1; cat /etc/haproxy/haproxy.cfg"), new RegExp(`server h2 ${quote(app2.host)}:80`));
  });

  it("a second up changes nothing", () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /fleet-rollout\s+(created|updated|replaced)/);
  });

  it("a code deploy rolls host by host under load through the balancer: 0 failed requests, every row kept, one lease across the rollout", async () => {
    const before = stack.outputs().releaseId;
    editApp((s) => s.replace('"hello"', '"hello again"'));
    const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 240 });
    const writes = startWrites(`http://${lb.host}/notes`);
    const t0 = Date.now();
    const up = stack.runAsync(["up", "--yes", "--skip-preview"]);   // the load runs meanwhile
    // while the first host is drained, another deploy cannot take the lease of the last one (it waits, names this one, gives up)
    // the rollout holds every lease from before the prepare to after the tidy: meanwhile each host runs
    // two slots (the live one and the prepared one, or the old one its flip kept)
    const twoSlots = () => app2.trySsh("systemctl is-active fdeploy-fleetapp@main.service fdeploy-fleetapp@blue.service fdeploy-fleetapp@green.service")
      .stdout.split("\n").filter((l) => l === "active").length >= 2;
    let intruder = "";
    let done = false;
    up.then(() => { done = true; });
    while (!done && !intruder) {
      if (twoSlots()) {   // the rollout runs; the second host's lease is this deploy's
        const dir = agentDir(app2);
        const t = app2.trySsh(`FDEPLOY_LOCK_WAIT=2 python3 -I -B ${dir}/agent fleet-lease`, JSON.stringify({ APP: "fleetapp", DEPLOY: "other/stack" }));
        intruder = `exit ${t.status}: ${t.stdout}${t.stderr}`;
      }
      await new Promise((res) => setTimeout(res, 500));   // two slots last the whole switch phase (seconds): no need to poll the host faster
    }
    const r = await up;
    const seconds = Math.round((Date.now() - t0) / 1000);
    const result = await load.stop();
    const written = await writes.stop();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(intruder, /^exit [1-9]/, intruder);
    // it names this deploy whether it came between two steps (the lease) or during one (the flock: "…, a step of the deploy of stack …")
    assert.match(intruder, /waiting for another deploy of 'fleetapp' on this server to finish \((.*, a step of )?the deploy of stack [^ ]*\/fleet\b/, intruder);
    assert.match(intruder, /another deploy of 'fleetapp' is running on this server: .*waited 2s/, intruder);
    const out = stack.outputs();
    assert.notStrictEqual(out.releaseId, before);
    const rollout = /app-fleet-rollout updated \((\d+)s\)/.exec(r.output)?.[1];   // the switch phase: both hosts, one by one
    console.log(`      code deploy: ${seconds} s (the fleet switch ${rollout} s); ${result.requests} reads and ${written.acked.length} writes through the balancer, ` +
      `${result.failures + written.errors.length} failed, max ${result.maxLatencyMs} ms`);
    assert.strictEqual(result.failures, 0, result.errors.join(", "));
    assert.deepStrictEqual(written.errors, []);
    assert.ok(result.requests > 50 && written.acked.length > 20, `${result.requests} reads, ${written.acked.length} writes`);
    assertKept(written.acked);
    assert.deepStrictEqual(out.hosts, { [app1.host]: out.releaseId, [app2.host]: out.releaseId });
  });

  it("a deploy with a PostgreSQL migration under load: 0 failed requests, every row kept, migrated once on the first host, every host on it", async () => {
    const live = stack.outputs().releaseId;
    const dumps = [dumpsOn(app1), dumpsOn(app2)];
    // expand: a nullable column and an index, which the new release writes (its id in each note)
    addMigration("0002_add_notes_tag", {
      up: "ALTER TABLE notes ADD COLUMN tag TEXT;\nCREATE INDEX notes_tag ON notes (tag);", down: "DROP INDEX notes_tag;\nALTER TABLE notes DROP COLUMN tag;",
      pgUp: "ALTER TABLE notes ADD COLUMN tag text;\nCREATE INDEX notes_tag ON notes (tag);", pgDown: "DROP INDEX notes_tag;\nALTER TABLE notes DROP COLUMN tag;",
    });
    editApp((s) => s.replace('"INSERT INTO notes (body, host) VALUES (%s, %s) RETURNING id", (body, socket.gethostname())',
      '"INSERT INTO notes (body, host, tag) VALUES (%s, %s, %s) RETURNING id", (body, socket.gethostname(), RELEASE)'));
    const l = await underLoad(() => stack.runAsync(["up", "--yes", "--skip-preview"]));
    assert.strictEqual(l.r.status, 0, l.r.output);
    assertNoneFailed("a deploy with a PostgreSQL migration", l);
    const out = stack.outputs();
    assert.notStrictEqual(out.releaseId, live);
    await assertFleetOn(out.releaseId, 2);
    assert.ok(hasTag(), "the new column");
    assert.ok(Number(psql(`SELECT count(*) FROM notes WHERE tag = '${out.releaseId}'`)) > 0, "the new release wrote the new column");
    // migrated once, by the first host (a restore point there first); the second host never ran the runner
    assert.strictEqual(psql("SELECT count(*) FROM schema_migrations WHERE version = 2"), "1");
    assert.match(l.r.output, /app-migrations-apply [^\n]*applied 0002_add_notes_tag\.postgres\.up\.sql/);
    assert.doesNotMatch(l.r.output, /migrations[\w-]*-h2/);
    assert.deepStrictEqual([dumpsOn(app1), dumpsOn(app2)], [dumps[0] + 1, 0], "one pg_dump, on the first host");
    assert.strictEqual(app2.trySsh("test -e /srv/fleetapp/migrations/current").status, 1, "the second host never migrated");
  });

  it("a third server joins under load; `fdeploy rollback` started during its rollout waits for it, then moves every host (the new one to a release it never ran) and --forward returns: 0 failed, no row lost", async () => {
    const live = stack.outputs().hosts[app1.host];
    const previous = stack.outputs().releaseHistory.filter((e: { status: string }) => e.status === "live").map((e: { releaseId: string }) => e.releaseId)
      .filter((id: string) => id !== live).pop();   // schema 1: from before the third host joined
    setServer(2, app3);
    const p = stack.preview();
    assert.strictEqual(p.status, 0, p.output);
    const ops = p.output.split("\n").filter((l) => /replace|delete/i.test(l));   // asserted last (what else happened tells more)
    if (ops.length) console.log(ops.join("\n"));
    const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 400 });
    const writes = startWrites(`http://${lb.host}/notes`, 400);
    const t0 = Date.now();
    // the rollback starts once the join's fleet switch runs (its output says so): it must wait for that rollout's lease
    let back: Promise<RunResult> | undefined;
    let upEnded = 0;
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"], (out) => {
      if (!back && /app-fleet-rollout\s+(creating|updating)/.test(out)) back = stack.rollbackAsync("--to", previous, "--yes");
    }).then((res) => { upEnded = Date.now(); return res; });
    const seconds = Math.round((upEnded - t0) / 1000);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /app-fleet-rollout updated/);
    assert.ok(back, "the rollback started during the join's rollout");
    const b = await back!;
    const backSeconds = Math.round((Date.now() - upEnded) / 1000);
    const result = await load.stop();
    const written = await writes.stop();
    console.log(`      a third host joins: ${seconds} s; fdeploy rollback started during its rollout, done ${backSeconds} s after it; ` +
      `${result.requests} reads and ${written.acked.length} writes through the balancer, ${result.failures + written.errors.length} failed`);
    assert.strictEqual(b.status, 0, b.output);
    // it waited for the join's rollout (naming it) before its plan, and its own up ran after it (no stack lock refused it)
    assert.match(b.output, new RegExp(`fdeploy: host ${quote(app1.host)}: another deploy of 'fleetapp' is running on this server: the deploy of stack [^ ]*/fleet \\(`), b.output);
    assert.match(b.output, new RegExp(`the deploy lease of ${[app1, app2, app3].map((s) => quote(s.host)).join(", ")} held for fdeploy rollback`));
    assert.match(b.output, new RegExp(`release ${previous} copied from ${quote(app1.host)} to ${quote(app3.host)}`), b.output);
    assert.match(b.output, /0002_add_notes_tag: drops column notes\.tag/);
    assert.strictEqual(result.failures, 0, result.errors.join(", "));
    assert.deepStrictEqual(written.errors, []);
    assertKept(written.acked);
    await assertFleetOn(previous, 1, [app1, app2, app3]);
    await waitAllUp(["h1", "h2", "h3"]);
    assert.ok(!hasTag(), "the down migration dropped the column");
    const w = startWrites(`http://${lb.host}/notes`);
    await new Promise((res) => setTimeout(res, 2000));
    const third = await w.stop();
    assert.ok(third.hosts.includes("fl-app3"), `the third host writes too, on the release it never ran before: ${third.hosts}`);
    assertKept(third.acked);
    const fwd = await underLoad(() => stack.rollbackAsync("--forward"));
    assert.strictEqual(fwd.r.status, 0, fwd.r.output);
    assertNoneFailed("fdeploy rollback --forward (3 hosts)", fwd);
    await assertFleetOn(live, 2, [app1, app2, app3]);
    assert.ok(hasTag(), "the column is back");
    assert.deepStrictEqual(ops, [], "the existing hosts keep every resource");
  });

  it("three hosts in batches of two: the third fails its check through the balancer after its switch, all three go back with their env, no row lost, the up fails naming the host", async () => {
    const good = stack.outputs().releaseId;
    const goodCode = fs.readFileSync(wsgi, "utf8");
    const goodEnv = envOn(app1);
    stack.setConfig("rollout.batchSize", "2");
    app3.ssh(`touch ${UNHEALTHY}`);
    breakRelease();
    const load = startLoad(`http://${lb.host}/`, { concurrency: 2, maxSeconds: 240 });
    const writes = startWrites(`http://${lb.host}/notes`);
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const result = await load.stop();
    const written = await writes.stop();
    assert.notStrictEqual(r.status, 0, "the up fails");
    assert.match(r.output, new RegExp(`stopped at host ${quote(app3.host)}`));
    assert.match(r.output, new RegExp(`went back to their previous release: ${quote(app1.host)}, ${quote(app2.host)}, ${quote(app3.host)}`));
    // every host serves the previous release with its environment (the new greeting gone), directly and through the balancer
    for (const s of [app1, app2, app3]) {
      assert.strictEqual(await releaseOn(s.host), good, s.name);
      const env = envOn(s);   // compared, never printed: it holds the secrets
      assert.ok(env === goodEnv, `${s.name}'s environment file is not the one it ran with: ${env.split("\n").filter((l) => l.startsWith("APP_")).join(", ")}`);
    }
    await waitAllUp(["h1", "h2", "h3"]);
    for (let i = 0; i < 6; i++) {
      const { greeting, release } = (await get(`http://${lb.host}/`)).json();
      assert.deepStrictEqual({ greeting, release }, { greeting: "hello again", release: good });
    }
    console.log(`      3 hosts, batches of 2, the third fails: ${result.requests} reads and ${written.acked.length} writes through the balancer, ` +
      `${result.failures + written.errors.length} failed`);
    assert.strictEqual(result.failures, 0, result.errors.join(", "));
    assert.deepStrictEqual(written.errors, []);
    assertKept(written.acked);
    // state tells the truth: the outputs keep the previous release everywhere; a preview shows the rollout to do again
    assert.deepStrictEqual(stack.outputs().hosts, { [app1.host]: good, [app2.host]: good, [app3.host]: good });
    const p = stack.preview();
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /fleet-rollout/);
    app3.ssh(`rm -f ${UNHEALTHY}`);
    unbreakRelease(goodCode);
  });

  it("strategy canary across hosts: the first host takes 20 % at the balancer, gated on HAProxy's log; a good release rolls on, one with 30 % 5xx on a route aborts at the first step with every host back", async () => {
    const live = stack.outputs().hosts as Record<string, string>;
    const servers = [app1, app2, app3].filter((s) => s.host in live);   // sorted by address: the canary host is the first
    const goodCode = fs.readFileSync(wsgi, "utf8");
    const weights = () => lb.ssh("python3 -", `import socket\nfor i in range(1, ${servers.length + 1}):\n    s = socket.socket(socket.AF_UNIX)\n` +
      `    s.connect("/run/haproxy/admin.sock")\n    s.sendall(b"get weight app_fleetapp/h%d\\n" % i)\n    print(s.makefile().read().split()[0])\n`).trim().split("\n").join(" ");
    const equal = servers.map(() => "1").join(" ");
    assert.strictEqual(weights(), equal);
    for (const [k, v] of Object.entries({ strategy: "canary", "canary.steps": "20,100", "canary.stepSeconds": "5", "canary.minRequests": "10", "canary.maxWaitSeconds": "30" })) {
      stack.setConfig(k, v);
    }
    /** An up under reads of / and of /flaky through the balancer; the weights the balancer had meanwhile (each change once). */
    const canaryUp = async () => {
      const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 240 });
      const flaky = { ok: 0, err: 0 };
      let stop = false;
      const flakyLoop = (async () => {
        while (!stop) {
          const st = await get(`http://${lb.host}/flaky`).then((a) => a.status, () => 0);
          if (st >= 500 || st === 0) flaky.err++; else flaky.ok++;
          await new Promise((res) => setTimeout(res, 20));
        }
      })();
      const seen: string[] = [];
      let done = false;
      const t0 = Date.now();
      const up = stack.runAsync(["up", "--yes", "--skip-preview"]).then((res) => { done = true; return res; });
      while (!done) {
        const w = weights();
        if (w !== seen[seen.length - 1]) seen.push(w);
        await new Promise((res) => setTimeout(res, 400));
      }
      const r = await up;
      stop = true;
      await flakyLoop;
      return { r, seconds: Math.round((Date.now() - t0) / 1000), reads: await load.stop(), flaky, seen };
    };
    // the canary's weights: 20 % for the first host, the others equal shares of the rest (HAProxy's 1-256)
    const step = servers.length === 2 ? "20 80" : "40 80 80";

    editApp((s) => `${s}\n# a canary release\n`);
    const ok = await canaryUp();
    assert.strictEqual(ok.r.status, 0, ok.r.output);
    const m = /canary step 1\/2 \(20 %\) passed: new (\d+) requests, 0 5xx \(0\.0 %\), p95 \d+ ms \| old (\d+) requests/.exec(ok.r.output);
    assert.ok(m, ok.r.output);
    const share = Number(m![1]) / (Number(m![1]) + Number(m![2]));
    const rollout = /app-fleet-rollout updated \((\d+)s\)/.exec(ok.r.output)?.[1];
    console.log(`      canary, good release: ${ok.seconds} s (the fleet switch ${rollout} s); the first host's share in the step ${(100 * share).toFixed(1)} % (${m![1]} of ` +
      `${Number(m![1]) + Number(m![2])}); weights seen ${ok.seen.join(" → ")}; ${ok.reads.requests} reads, ${ok.reads.failures} failed, max ${ok.reads.maxLatencyMs} ms`);
    assert.strictEqual(ok.reads.failures, 0, ok.reads.errors.join(", "));
    assert.ok(share > 0.12 && share < 0.28, `the canary host's share ${share} for a weight of 20 %`);
    assert.ok(ok.seen.includes(step), `weights seen: ${ok.seen.join(" → ")}`);
    assert.strictEqual(weights(), equal, "equal weights after the rollout");
    const good = stack.outputs().releaseId;
    assert.notStrictEqual(good, live[app1.host]);
    assert.deepStrictEqual(stack.outputs().hosts, Object.fromEntries(servers.map((s) => [s.host, good])));
    for (const s of servers) assert.strictEqual(await releaseOn(s.host), good, s.name);

    // a release that answers 500 to 3 of every 10 requests on /flaky (the balancer's checks, on /health, pass)
    editApp((s) => s.replace('@app.get("/")', 'import itertools\n_n = itertools.count()\n\n\n@app.get("/flaky")\ndef flaky():\n' +
      '    return (jsonify(error="flaky"), 500) if next(_n) % 10 < 3 else jsonify(ok=True)\n\n\n@app.get("/")'));
    const bad = await canaryUp();
    console.log(`      canary, a release with 30 % 5xx on /flaky: ${bad.seconds} s; weights seen ${bad.seen.join(" → ")}; ${bad.reads.requests} reads of /, ` +
      `${bad.reads.failures} failed; /flaky ${bad.flaky.ok} ok, ${bad.flaky.err} 5xx`);
    assert.notStrictEqual(bad.r.status, 0, "the up fails");
    assert.match(bad.r.output, new RegExp(`stopped at host ${quote(app1.host)}: canary aborted at step 1/2 \\(20 %\\): the new release's 5xx share is over ` +
      `canary\\.maxErrorRate \\(0\\.01\\) \\[new \\d+ requests, [1-9]\\d* 5xx \\([\\d.]+ %\\), p95 \\d+ ms \\| old \\d+ requests, 0 5xx`));
    assert.match(bad.r.output, new RegExp(`host ${quote(app1.host)} is back on release ${good} at its weight before`));
    assert.strictEqual(bad.reads.failures, 0, bad.reads.errors.join(", "));
    assert.strictEqual(weights(), equal, "the weights the hosts had");
    assert.strictEqual(lb.trySsh("test -e /etc/fdeploy/haproxy/fleetapp.canary-weights").status, 1, "nothing kept for a next up to undo");
    for (const s of servers) assert.strictEqual(await releaseOn(s.host), good, s.name);
    assert.deepStrictEqual(stack.outputs().hosts, Object.fromEntries(servers.map((s) => [s.host, good])));
    fs.writeFileSync(wsgi, goodCode);
    for (const k of ["strategy", "canary"]) stack.mustRun(["config", "rm", "--path", k]);
  });

  it("destroy takes the app's part off the balancer, which stops with no app left", () => {
    const r = stack.run(["destroy", "--yes", "--skip-preview"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(lb.trySsh("test -e /etc/fdeploy/haproxy/fleetapp.json").status, 1);
    assert.strictEqual(lb.trySsh("systemctl is-active haproxy").stdout.trim(), "inactive");
  });
});
