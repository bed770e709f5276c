// runtime: docker (README "Docker runtime"), on the official Docker provider (@pulumi/docker 5.0.0,
// pulumi-resource-docker built from upstream sources): a python stack switches to docker with one up
// (the base system installs docker.io, the image is built on the server's engine over ssh://) under
// load with 0 failed requests and its data kept; then code, dependency and migration changes, a
// failing release (the old container keeps serving), drift (a stopped container), a rollback to a
// kept image, the container's sandbox (docker inspect), a shared folder the app swapped for a symlink
// (issue 25: refused, nothing of the host in a container), the switch back to python, all blue-green
// under load, and destroy (data kept). One server, shared by the cases (each builds on the one before).
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { addWheels, startServer, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { assertUnitExposures } from "./fixture";
import { startLoad, LoadResult } from "./load";
import { PROJECT_DIR, TestStack } from "./pulumi";
import { tempDir } from "../tmpdir";

const EXTRA_DEP = "six==1.17.0";
const BASE_IMAGE = "fdeploy-test/python:bookworm"; // the harness's image (testserver.sh docker_args)

describe("docker runtime: switch, code, dependency, migration, failure, drift, rollback, switch back", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let migrations: ReturnType<typeof copyMigrations>;
  let base: string;
  const releases: string[] = [];

  const health = async () => (await get(`${base}/health`)).json();
  const addNote = async (body: string) => {
    const r = await get(`${base}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body }) });
    assert.strictEqual(r.status, 201, r.text);
  };
  const notes = async (): Promise<string[]> => (await get(`${base}/api/notes`)).json().map((n: any) => n.body);
  /** The running containers of the app (name and image). */
  const containers = () => server.ssh("docker ps --filter name=^fdeploy-flaskapp- --format '{{.Names}} {{.Image}}'").trim().split("\n").filter(Boolean);
  /** `docker inspect` of container NAME: the sandbox every container of the app must have. Each bind
   * mount is the app's own data (the very folder under shared/ its destination stands for, compared by
   * device and inode from inside the container, so a planted symlink cannot pass) or the slot's socket
   * folder; /tmp is the only tmpfs. MOVED: where a folder is now (container path -> host path).
   * Returns the inspect object. */
  function assertSandbox(name: string, moved: Record<string, string> = {}): any {
    const inspect = JSON.parse(server.ssh(`docker inspect ${name}`))[0];
    const hc = inspect.HostConfig;
    const user = String(inspect.Config.User);
    assert.match(user, /^[0-9]+:[0-9]+$/, `runs as a numeric uid:gid (${user})`);
    assert.ok(!user.split(":").includes("0"), `runs as a non-root user and group (${user})`);
    assert.strictEqual(hc.ReadonlyRootfs, true, "read-only root filesystem");
    assert.deepStrictEqual(hc.CapDrop, ["ALL"]);
    assert.ok(!hc.CapAdd || hc.CapAdd.length === 0, `no capability added: ${JSON.stringify(hc.CapAdd)}`);
    assert.ok((hc.SecurityOpt ?? []).includes("no-new-privileges"), JSON.stringify(hc.SecurityOpt));
    assert.strictEqual(hc.Privileged, false);
    assert.notStrictEqual(hc.NetworkMode, "host");
    assert.ok(!/^host$/.test(hc.PidMode) && !/^host$/.test(hc.IpcMode) && !/^host$/.test(hc.UTSMode ?? "") && !/^host$/.test(hc.UsernsMode ?? ""),
      `no host namespace: ${JSON.stringify({ pid: hc.PidMode, ipc: hc.IpcMode, uts: hc.UTSMode, userns: hc.UsernsMode })}`);
    assert.deepStrictEqual(hc.Devices ?? [], [], "no device");
    assert.deepStrictEqual(Object.keys(hc.Tmpfs ?? {}), ["/tmp"], "the only tmpfs is /tmp");
    const slot = name.replace(/^fdeploy-flaskapp-/, "");
    for (const m of inspect.Mounts) {
      assert.strictEqual(m.Type, "bind", JSON.stringify(m));
      if (m.Destination === "/run/fdeploy") {
        assert.strictEqual(m.Source, `/run/fdeploy-flaskapp/c-${slot}`, JSON.stringify(m));
        continue;
      }
      const shared = moved[m.Destination] ?? (m.Destination === "/srv/flaskapp/shared" ? "/srv/flaskapp/shared"
        : m.Destination.startsWith("/app/") ? `/srv/flaskapp/shared/${m.Destination.slice(5)}` : "");
      assert.ok(shared, `an unexpected mount: ${JSON.stringify(m)}`);
      const inside = server.ssh(`docker exec ${name} stat -c %d:%i ${m.Destination}`).trim();
      const real = server.ssh(`test -d ${shared} && test ! -L ${shared} && stat -c %d:%i ${shared}`).trim();
      assert.strictEqual(inside, real, `${m.Destination} in the container is not the app's ${shared} (mount ${JSON.stringify(m)})`);
    }
    return inspect;
  }
  /** An up under load: the up's result, the load's result and the seconds it took. */
  async function upUnderLoad(): Promise<{ status: number; output: string; load: LoadResult; seconds: number }> {
    const load = startLoad(`${base}/health`, { concurrency: 3, maxSeconds: 300 });
    const t0 = Date.now();
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const seconds = (Date.now() - t0) / 1000;
    return { ...r, load: await load.stop(), seconds };
  }
  function setMarker(marker: string, withDep = false): void {
    app.edit("wsgi.py", (s) => s.replace(/\n# marker[\s\S]*$/, "") + `
# marker
import importlib.metadata as _md


@app.get("/api/marker")
def marker():
    try:
        six = _md.version("six")
    except _md.PackageNotFoundError:
        six = None
    return {"marker": ${JSON.stringify(marker)}, "six": six}
`);
    if (withDep) app.edit("requirements.txt", (s) => (s.includes("six==") ? s : s.trimEnd() + `\n${EXTRA_DEP}\n`));
  }

  before(() => {
    const req = path.join(tempDir("fdeploy-req-"), "requirements.txt");
    fs.writeFileSync(req, `${EXTRA_DEP}\n`);
    addWheels(req); // before the server boots: the harness's base image carries the wheelhouse
    server = startServer("docker", 181, { docker: true });
    app = copyApp("docker");
    migrations = copyMigrations("docker");
    stack = new TestStack("docker");
    stack.target(server, { appDir: app.rel, migrationsDir: migrations.rel, strategy: "blue-green", healthTimeoutSeconds: "60" });
    stack.setConfig("secrets.SECRET_KEY", "docker-test-secret", { secret: true });
    base = `http://${server.host}`;
  });
  after(() => stack?.remove());

  it("python -> docker: one up installs Docker, builds the image on the server and switches with 0 failed requests; data kept", async () => {
    const first = stack.up();
    assert.strictEqual(first.status, 0, first.output);
    await addNote("written by the python runtime");
    releases.push(stack.outputs().releaseId);

    stack.setPlainConfigs({ runtime: "docker", "docker.baseImage": BASE_IMAGE });
    const r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    assert.ok(r.load.requests > 20, `load ran (${r.load.requests} requests)`);
    const h = await health();
    assert.strictEqual(h.release, releases[0]);
    assert.deepStrictEqual(await notes(), ["written by the python runtime"], "the database is the same");
    const running = containers();
    assert.strictEqual(running.length, 1, running.join("; "));
    assert.match(running[0], new RegExp(`^fdeploy-flaskapp-(blue|green) fdeploy-flaskapp:${releases[0]}$`));
    // no Gunicorn of the python runtime is left: the container is the only app process
    assert.strictEqual(server.ssh("systemctl list-units --state=active --plain --no-legend 'fdeploy-flaskapp@*' | wc -l").trim(), "1");
    // the secret reached the app, from the root-only file, never into an image
    const fp = (await get(`${base}/api/secret-fingerprint`)).json().sha256;
    assert.strictEqual(fp, require("crypto").createHash("sha256").update("docker-test-secret").digest("hex"));
    const name = running[0].split(" ")[0];
    const imageText = server.ssh(`docker image inspect fdeploy-flaskapp:${releases[0]}; docker history --no-trunc fdeploy-flaskapp:${releases[0]}`);
    assert.doesNotMatch(imageText, /docker-test-secret|SECRET_KEY/);
    // the container's sandbox
    const uid = server.ssh("id -u flaskapp").trim();
    assert.strictEqual(assertSandbox(name).Config.User.split(":")[0], uid, "runs as the app's uid");
    // the slot unit (the Docker client's) is sandboxed too: systemd-analyze security <= 2.5
    assertUnitExposures(server, "flaskapp", "docker.test.ts");
    // a no-op up changes nothing (provider config, image and steps are stable)
    const again = stack.up();
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /(created|updated|replaced|deleted)/, `the up after the switch changed something:\n${again.output}`);
  });

  it("docker: a code change (restart) and a dependency change (blue-green) are really running afterwards; 0 failed requests", async () => {
    // restart under Docker goes through a canary container first (README "Docker runtime"): no gap
    stack.setConfig("strategy", "restart");
    setMarker("code change");
    let r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    assert.deepStrictEqual((await get(`${base}/api/marker`)).json(), { marker: "code change", six: null });
    releases.push(stack.outputs().releaseId);
    assert.strictEqual(containers().length, 1, containers().join("; "));
    console.log(`      code change (restart): up ${r.seconds.toFixed(1)} s, ${r.load.requests} requests, 0 failed`);
    stack.setConfig("strategy", "blue-green");

    setMarker("dependency change", true);
    r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    assert.deepStrictEqual((await get(`${base}/api/marker`)).json(), { marker: "dependency change", six: "1.17.0" });
    releases.push(stack.outputs().releaseId);
    assert.strictEqual((await health()).release, releases[2]);
    assert.strictEqual(containers().length, 1, containers().join("; "));
    console.log(`      dependency change: up ${r.seconds.toFixed(1)} s, ${r.load.requests} requests, 0 failed`);
  });

  it("docker: a migration and a release command run before the switch (the command in the new image); data kept", async () => {
    // proves where it ran: /venv exists only in the image; the database is the shared one, which the
    // container's user (the app's uid, its group shared with the slot users) can write
    stack.setConfig("releaseCommands[0]",
      'test -x /venv/bin/gunicorn && test -w "$DATABASE_PATH" && test "$(id -g)" = "$(stat -c %g "$DATABASE_PATH")" && echo "$RELEASE_ID" > /srv/flaskapp/shared/release-command.txt');
    fs.writeFileSync(path.join(migrations.dir, "0003_add_notes_pinned.up.sql"), "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n");
    fs.writeFileSync(path.join(migrations.dir, "0003_add_notes_pinned.down.sql"), "ALTER TABLE notes DROP COLUMN pinned;\n");
    setMarker("with schema 3", true);
    const r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    assert.strictEqual((await health()).schema_version, 3);
    releases.push(stack.outputs().releaseId);
    assert.deepStrictEqual(await notes(), ["written by the python runtime"]);
    assert.strictEqual(server.ssh("cat /srv/flaskapp/shared/release-command.txt").trim(), releases[3]);
    stack.mustRun(["config", "rm", "--path", "releaseCommands"]);
  });

  it("docker: a release whose process exits fails fast; the live container keeps serving", async () => {
    const live = (await health()).release;
    const liveContainer = containers();
    app.edit("wsgi.py", (s) => s + "\nraise RuntimeError('broken on purpose')\n");
    try {
      const r = await upUnderLoad();
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, /failed its health check on slot (blue|green); slot (blue|green) keeps serving/);
      assert.match(r.output, /broken on purpose/, `the journal tail shows the app error:\n${r.output.slice(-3000)}`);
      assert.match(r.output, /its process .*exited.*not waiting out the 60s health timeout/);
      assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
      assert.strictEqual((await health()).release, live);
      assert.deepStrictEqual(containers(), liveContainer);
    } finally {
      app.edit("wsgi.py", (s) => s.replace("\nraise RuntimeError('broken on purpose')\n", ""));
    }
  });

  it("docker: a stopped container is drift (preview --refresh), repaired by up --refresh", async () => {
    const name = containers()[0].split(" ")[0];
    server.ssh(`docker stop ${name} >/dev/null`);
    const p = stack.run(["preview", "--refresh", "--diff"]);
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /running\s*:\s*true => false/, `preview --refresh shows the stopped app:\n${p.output}`);
    const r = stack.run(["up", "--refresh", "--yes", "--skip-preview"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await health()).release, releases[3]);
    assert.strictEqual(containers().length, 1);
  });

  it("docker: rollback runs the kept image of the previous release (and its schema); --forward returns", async () => {
    const rb = stack.rollback();
    assert.strictEqual(rb.status, 0, rb.output);
    let h = await health();
    assert.strictEqual(h.release, releases[2], "the previous healthy release is live again");
    assert.strictEqual(h.schema_version, 2);
    assert.match(containers()[0], new RegExp(`fdeploy-flaskapp:${releases[2]}$`));
    const fwd = stack.rollback("--forward");
    assert.strictEqual(fwd.status, 0, fwd.output);
    h = await health();
    assert.strictEqual(h.release, releases[3]);
    assert.strictEqual(h.schema_version, 3);
  });

  it("docker: fdeploy exec runs in the live container, as the app's uid, with its environment", () => {
    const fdeploy = (args: string[], input = "") => {
      const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...args.slice(0, 1), "--stack", stack.name, "--config-file", stack.configFile, ...args.slice(1)],
        { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8", input });
      return { status: r.status, stdout: r.stdout ?? "", output: (r.stdout ?? "") + (r.stderr ?? "") };
    };
    const uid = server.ssh("id -u flaskapp").trim();
    let r = fdeploy(["exec", "--", "sh", "-c", 'echo "$(id -u) $RELEASE_ID $(command -v gunicorn)"; test -n "$SECRET_KEY"']);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.stdout.trim(), `${uid} ${releases[3]} /venv/bin/gunicorn`);
    assert.ok(!r.output.includes("docker-test-secret"), "a secret nobody asked for was printed");
    assert.strictEqual(fdeploy(["exec", "--", "sh", "-c", "exit 7"]).status, 7);
    // the container's sandbox holds: its root filesystem is read-only
    assert.notStrictEqual(fdeploy(["exec", "--", "touch", "/app/x"]).status, 0);
    r = fdeploy(["exec", "--stdin", "--", "python", "-", "$(touch /tmp/x)", "a b"], "import sys; print(sys.argv[1:])\n");
    assert.strictEqual(r.stdout.trim(), "['$(touch /tmp/x)', 'a b']", r.output);
  });

  it("docker: a shared dir the app swaps for a symlink is never mounted: the deploy refuses naming it, the site keeps serving; restored, the next deploy works", async () => {
    // issue 25: shared/ is the app's, so the app (code execution as its user: runuser, as
    // least-privilege.test.ts models it) can replace a sharedDirs folder with a symlink between deploys;
    // a mount source that dockerd (root) resolved would put the link's target into the container
    const asApp = (script: string) => server.ssh("runuser -u flaskapp -- /bin/sh -es", script);
    stack.setConfig("sharedDirs[0]", "uploads");
    let r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    const live = (await health()).release;
    const liveContainer = containers();
    const name = liveContainer[0].split(" ")[0];
    assertSandbox(name);
    assert.ok(JSON.parse(server.ssh(`docker inspect ${name}`))[0].Mounts.some((m: any) => m.Destination === "/app/uploads"));
    server.ssh(`docker exec ${name} sh -c 'echo from-the-container > /app/uploads/probe.txt'`);
    assert.strictEqual(server.ssh("cat /srv/flaskapp/shared/uploads/probe.txt").trim(), "from-the-container");

    server.ssh("echo host-only > /etc/fdeploy-issue25-marker");
    asApp("cd /srv/flaskapp/shared && mv uploads uploads.real && ln -s /etc uploads");
    setMarker("after the attack", true);
    try {
      r = await upUnderLoad();
      // what the running containers see of the host's /etc (the marker is there, readable by all)
      const leaks = containers().map((c) => c.split(" ")[0])
        .map((n) => `${n}: ${server.trySsh(`docker exec ${n} cat /app/uploads/fdeploy-issue25-marker`).stdout.trim() || "-"}`);
      assert.notStrictEqual(r.status, 0, `the deploy went through with shared/uploads -> /etc (${leaks.join("; ")}):\n${r.output.slice(-3000)}`);
      assert.match(r.output, /\/srv\/flaskapp\/shared\/uploads is a symlink/, r.output.slice(-3000));
      console.log(`      refused in ${r.seconds.toFixed(1)} s:\n${r.output.split("\n").filter((l) => /refusing to mount|not started|failed its health check/.test(l)).join("\n")}`);
      assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
      assert.strictEqual((await health()).release, live, "the live release keeps serving");
      assert.deepStrictEqual(containers(), liveContainer);
      for (const c of containers()) {
        const n = c.split(" ")[0];
        assertSandbox(n, { "/app/uploads": "/srv/flaskapp/shared/uploads.real" });   // the folder it was started with
        assert.notStrictEqual(server.trySsh(`docker exec ${n} sh -c 'grep -rqs host-only /app /srv /run/fdeploy /tmp'`).status, 0,
          `the host's /etc is visible in ${n}`);
      }
    } finally {
      asApp("cd /srv/flaskapp/shared && rm uploads && mv uploads.real uploads");
      server.ssh("rm -f /etc/fdeploy-issue25-marker");
    }
    r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    releases.push(stack.outputs().releaseId);
    assert.notStrictEqual(releases[releases.length - 1], live);
    assert.strictEqual((await health()).release, releases[releases.length - 1]);
    assert.deepStrictEqual((await get(`${base}/api/marker`)).json(), { marker: "after the attack", six: "1.17.0" });
    const now = containers()[0].split(" ")[0];
    assertSandbox(now);
    assert.strictEqual(server.ssh(`docker exec ${now} cat /app/uploads/probe.txt`).trim(), "from-the-container", "the restored folder is mounted");
  });

  it("docker -> python under restart (the non-prod default): one up, 0 failed requests, data kept, no container left", async () => {
    stack.mustRun(["config", "rm", "runtime"]);
    stack.mustRun(["config", "rm", "docker"]);
    stack.setConfig("strategy", "restart");   // blue-green switches through the idle slot; restart reuses the live one
    const r = await upUnderLoad();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(r.load.failures, 0, `requests failed: ${r.load.errors.join(", ")}`);
    assert.ok(r.load.requests > 20);
    assert.strictEqual((await health()).release, releases[releases.length - 1]);
    assert.deepStrictEqual((await get(`${base}/api/marker`)).json(), { marker: "after the attack", six: "1.17.0" });
    assert.deepStrictEqual(await notes(), ["written by the python runtime"]);
    assert.deepStrictEqual(containers(), []);
    assert.match(server.ssh("systemctl show -p ExecStart 'fdeploy-flaskapp@*.service' --state=active"), /\.venv\/bin\/gunicorn/);
  });

  it("destroy removes the app's images and keeps the data", () => {
    const r = stack.destroy();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.ssh("docker image ls -q fdeploy-flaskapp").trim(), "", "the release images are gone");
    assert.strictEqual(server.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT body FROM notes'").trim(), "written by the python runtime");
  });
});
