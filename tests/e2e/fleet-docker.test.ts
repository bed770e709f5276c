// runtime docker on a fleet (README "Scale out", "Docker runtime"): two app servers that can run Docker behind
// an HAProxy balancer the stack manages, the data on a PostgreSQL server the stack manages (servers fd-app1,
// fd-app2, fd-lb, fd-db: octets 242-245). One up installs Docker on both app servers, builds the release's image
// on each host's engine (each tag names the image its own build made: the state's id for that host) and switches
// both to their container, sandboxed; a second up changes nothing; a code deploy under a read loop through the
// balancer fails no request and both hosts serve the new code from its image; a release that fails its health
// check on the second host stops the rollout, the first goes back to its previous container, no read fails,
// no row is lost, and the outputs show the previous release on both.
// Time: 4 min 42 s (282 s) on 2026-12-07, load average 0 at its start, 9.6 at its end (other suites started beside it):
// first up 96 s (Docker installed on both app servers, each builds the image), second up 8 s, the code deploy
// 51 s (its fleet switch 32 s, 10,415 reads, 0 failed), the failing release 92 s (healthTimeoutSeconds 30: 10,025 reads, 0 failed).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { addWheels, startServer, TestServer } from "../servers";
import { get } from "./app-copy";
import { startLoad } from "./load";
import { changed, PROJECT_DIR, TestStack } from "./pulumi";

const FIXTURE = path.join(PROJECT_DIR, "tests/e2e/fixtures/fleet-app");
const BASE_IMAGE = "fdeploy-test/python:bookworm"; // the harness's image (testserver.sh docker_args)
const APP = "fdapp";
// the broken release fails its health check where this file exists: in shared/, which every container mounts at
// its own path (the image's /etc is not the host's)
const UNHEALTHY = `/srv/${APP}/shared/fd-unhealthy`;

describe("docker on a fleet: each host builds the image, the rollout switches containers host by host", function () {
  this.timeout(900000);
  let app1: TestServer, app2: TestServer, lb: TestServer, db: TestServer;
  let stack: TestStack;
  const rel = path.join(".e2e", "fleet-docker", "app");
  const appDir = path.join(PROJECT_DIR, rel);
  const wsgi = path.join(appDir, "wsgi.py");
  const editApp = (f: (s: string) => string) => fs.writeFileSync(wsgi, f(fs.readFileSync(wsgi, "utf8")));
  const releaseOn = async (host: string) => (await get(`http://${host}/health`)).json().release as string;
  const psql = (sql: string) => db.ssh(`runuser -u postgres -- psql -X -At -d ${APP}`, sql).trim();
  /** The app's running containers on S: "name image". */
  const containers = (s: TestServer) => s.ssh(`docker ps --filter name=^fdeploy-${APP}- --format '{{.Names}} {{.Image}}'`).trim().split("\n").filter(Boolean);
  /** Each host on RELEASE: the outputs, its answer through its own nginx, its one container of that release's image. */
  const assertFleetOn = async (release: string) => {
    const out = stack.outputs();
    assert.deepStrictEqual(out.hosts, { [app1.host]: release, [app2.host]: release });
    for (const s of [app1, app2]) {
      assert.strictEqual(await releaseOn(s.host), release, s.name);
      const running = containers(s);
      assert.strictEqual(running.length, 1, `${s.name}: ${running.join("; ")}`);
      assert.match(running[0], new RegExp(`^fdeploy-${APP}-(blue|green) fdeploy-${APP}:${release}$`), s.name);
    }
  };
  /** Each host's image of RELEASE is the one its own build made (the id the state holds for that host's image step). */
  const assertOwnBuilds = (release: string) => {
    const state = JSON.parse(stack.stateText());
    const ids: string[] = [];
    for (const [s, step] of [[app1, "app-image"], [app2, "app-image-h2"]] as const) {
      const image = state.deployment.resources.find((r: any) => r.type === "docker:index/image:Image" && r.urn.endsWith(`::${step}`));
      assert.ok(image, `no ${step} in the state`);
      assert.strictEqual(image.outputs.imageName, `fdeploy-${APP}:${release}`);
      const id = s.ssh(`docker image inspect --format '{{.Id}}' fdeploy-${APP}:${release}`).trim();
      assert.strictEqual(id, image.outputs.repoDigest, `${s.name}'s tag names the image its own build made`);
      ids.push(id);
    }
    console.log(`      image ids of ${release}: ${ids.map((i) => i.slice(7, 19)).join(", ")} (${ids[0] === ids[1] ? "the same" : "each host's own build"})`);
  };
  /** The container sandbox (README "Docker runtime"), on each host. */
  const assertSandboxed = (s: TestServer) => {
    const name = containers(s)[0].split(" ")[0];
    const inspect = JSON.parse(s.ssh(`docker inspect ${name}`))[0];
    const hc = inspect.HostConfig;
    assert.strictEqual(String(inspect.Config.User).split(":")[0], s.ssh(`id -u ${APP}`).trim(), `${s.name}: the app's uid`);
    assert.deepStrictEqual([hc.ReadonlyRootfs, hc.Privileged, hc.CapDrop, (hc.SecurityOpt ?? []).includes("no-new-privileges")],
      [true, false, ["ALL"], true], `${s.name}: ${JSON.stringify(hc)}`);
    assert.notStrictEqual(hc.NetworkMode, "host");
  };

  before(() => {
    addWheels(path.join(FIXTURE, "requirements.txt"));   // before the servers boot: the harness's base image carries the wheelhouse
    db = startServer("fd-db", 245, { image: "postgres" });
    app1 = startServer("fd-app1", 242, { docker: true });
    app2 = startServer("fd-app2", 243, { docker: true });
    lb = startServer("fd-lb", 244);
    fs.rmSync(appDir, { recursive: true, force: true });
    fs.mkdirSync(path.join(appDir, "migrations"), { recursive: true });
    fs.cpSync(FIXTURE, appDir, { recursive: true });
    const schema = fs.readFileSync(path.join(FIXTURE, "pg-schema.sql"), "utf8").trim();
    for (const [suffix, text] of [["up", "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, host TEXT NOT NULL);"],
      ["down", "DROP TABLE notes;"], ["postgres.up", schema], ["postgres.down", "DROP TABLE notes;"]]) {
      fs.writeFileSync(path.join(appDir, "migrations", `0001_create_notes.${suffix}.sql`), `${text}\n`);
    }
    stack = new TestStack("fleet-docker");
    stack.setPlainConfigs({
      appName: APP, appDir: rel, migrationsDir: path.join(rel, "migrations"), runtime: "docker", "docker.baseImage": BASE_IMAGE,
      strategy: "blue-green", healthTimeoutSeconds: "30", "rollout.drainSeconds": "2", "database.engine": "postgres",
      "database.host.host": db.host, "database.host.privateKeyPath": db.keyPath, "database.host.hostKey": db.hostKey,
      "loadBalancer.host": lb.host, "loadBalancer.privateKeyPath": lb.keyPath, "loadBalancer.hostKey": lb.hostKey,
      ...Object.fromEntries([app1, app2].flatMap((s, i) => [
        [`servers[${i}].host`, s.host], [`servers[${i}].privateKeyPath`, s.keyPath], [`servers[${i}].hostKey`, s.hostKey]])),
    });
    stack.setConfig("secrets.SECRET_KEY", "fleet-docker-secret", { secret: true });
    stack.setConfig("databasePassword", "fleet-docker-db-password-0123", { secret: true });
  });
  after(() => {
    stack?.remove();
    fs.rmSync(path.dirname(appDir), { recursive: true, force: true });
  });

  it("one up: Docker on both app servers, the image built on each host's engine, both switched to their sandboxed container; a second up changes nothing", async () => {
    const t0 = Date.now();
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    console.log(`      first up: ${Math.round((Date.now() - t0) / 1000)} s`);
    const release = stack.outputs().releaseId;
    await assertFleetOn(release);
    assertOwnBuilds(release);
    for (const s of [app1, app2]) assertSandboxed(s);
    // both hosts serve through the balancer and write to the one database (from inside their containers)
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) served.add((await get(`http://${lb.host}/`)).json().host);
    assert.strictEqual(served.size, 2, `round robin over both hosts: ${[...served].join(", ")}`);
    const note = await get(`http://${lb.host}/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "kept" }) });
    assert.strictEqual(note.status, 201, note.text);
    const t1 = Date.now();
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    console.log(`      second up: ${Math.round((Date.now() - t1) / 1000)} s`);
    assert.deepStrictEqual(changed(again.output), []);
    assert.doesNotMatch(again.output, /(image|fleet-rollout)\S*\s+(created|updated|replaced)/, again.output);
  });

  it("a code deploy under a read loop through the balancer: 0 failed, both hosts serve the new code from its image", async () => {
    const before = stack.outputs().releaseId;
    editApp((s) => s.replace('"hello"', '"hello from docker"'));
    const load = startLoad(`http://${lb.host}/`, { concurrency: 4, maxSeconds: 240 });
    const t0 = Date.now();
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const seconds = Math.round((Date.now() - t0) / 1000);
    const reads = await load.stop();
    assert.strictEqual(r.status, 0, r.output);
    const release = stack.outputs().releaseId;
    assert.notStrictEqual(release, before);
    const rollout = /fleet-rollout updated \((\d+)s\)/.exec(r.output)?.[1];
    console.log(`      code deploy: ${seconds} s (the fleet switch ${rollout} s); ${reads.requests} reads through the balancer, ${reads.failures} failed, max ${reads.maxLatencyMs} ms`);
    assert.strictEqual(reads.failures, 0, reads.errors.join(", "));
    assert.ok(reads.requests > 50, `${reads.requests} reads`);
    await assertFleetOn(release);
    assertOwnBuilds(release);
    for (const s of [app1, app2]) assert.strictEqual((await get(`http://${s.host}/`)).json().greeting, "hello from docker", s.name);
  });

  it("a release failing its health check on the second host: the first goes back to its previous container, 0 failed reads, both on the previous release", async () => {
    const good = stack.outputs().releaseId;
    const goodCode = fs.readFileSync(wsgi, "utf8");
    app2.ssh(`touch ${UNHEALTHY}`);
    editApp((s) => s.replace("def health():\n", `def health():\n    if os.path.exists("${UNHEALTHY}"):\n        return jsonify(status="error"), 503\n`)
      .replace('"hello from docker"', '"hello broken"'));
    const load = startLoad(`http://${lb.host}/`, { concurrency: 2, maxSeconds: 240 });
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const reads = await load.stop();
    console.log(`      the second host fails: ${reads.requests} reads through the balancer, ${reads.failures} failed`);
    assert.notStrictEqual(r.status, 0, "the up fails");
    const quote = (s: string) => s.replace(/\./g, "\\.");
    assert.match(r.output, new RegExp(`stopped at host ${quote(app2.host)}: [\\s\\S]*?failed its health check`));
    assert.match(r.output, new RegExp(`went back to their previous release: ${quote(app1.host)}; never switched: none`));
    assert.strictEqual(reads.failures, 0, reads.errors.join(", "));
    await assertFleetOn(good);
    for (let i = 0; i < 4; i++) assert.strictEqual((await get(`http://${lb.host}/`)).json().greeting, "hello from docker");
    assert.strictEqual(psql("SELECT count(*) FROM notes WHERE body = 'kept'"), "1", "the data kept");
    app2.ssh(`rm -f ${UNHEALTHY}`);
    fs.writeFileSync(wsgi, goodCode);
  });
});
