// Issue "Deploy the Flask app": the real program (index.ts) with a real `pulumi up` against a bare
// test server, through every change a user makes: first deploy, no-op, code change, config
// change, secret, failing health check, destroy.
import * as assert from "assert";
import * as crypto from "crypto";
import { execFileSync } from "child_process";
import { startServer, TestServer } from "../servers";
import { copyApp, get } from "./app-copy";
import { watchProcessList } from "./process-list";
import { changed, TestStack } from "./pulumi";

describe("deploy: the Flask app on a bare server (restart strategy)", function () {
  this.timeout(900000);
  const SECRET = `s3cr3t-${crypto.randomBytes(8).toString("hex")}`;
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let base: string;

  before(() => {
    server = startServer("deploy", 41);
    base = `http://${server.host}`;
    app = copyApp("deploy");
    stack = new TestStack("deploy");
    stack.target(server, { appDir: app.rel, migrationsDir: "migrations", workers: "2", healthTimeoutSeconds: "10", "env.APP_GREETING": "Hello from e2e" });
    stack.setConfig("secrets.SECRET_KEY", SECRET, { secret: true });
  });
  after(() => stack?.remove());

  it("first up turns the bare server into one serving the app through nginx on port 80", async () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const health = await get(`${base}/health`);
    assert.strictEqual(health.status, 200, health.text);
    assert.strictEqual(health.json().schema_version, 2);
    assert.strictEqual(health.json().release, stack.outputs().releaseId);
    const page = await get(`${base}/`);
    assert.match(page.text, /Hello from e2e/);
    const css = await get(`${base}/static/style.css`);
    assert.strictEqual(css.status, 200, "nginx serves static files");
    const created = await get(`${base}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: "kept across deploys" }) });
    assert.strictEqual(created.status, 201, created.text);
    assert.strictEqual(stack.outputs().url, `http://${server.host}/`);
  });

  it("a second up with nothing changed runs no remote command", () => {
    const before = server.ssh("wc -l < /srv/flaskapp/history.jsonl");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /(created|updated|replaced)/);
    assert.strictEqual(server.ssh("wc -l < /srv/flaskapp/history.jsonl"), before, "no activation ran");
  });

  it("a code change: preview shows the release replaced; up runs only release-dependent steps", async () => {
    const oldRelease = stack.outputs().releaseId;
    app.edit("notes/templates/index.html", (s) => s.replace("</body>", "<p>version two</p></body>"));
    const p = stack.preview();
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /\+-\s+command:remote:Command\s+app-release-install\s+replace\s+\[diff: [^\]]*triggers/);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    // the new release is loaded (preflight) before the switch
    assert.deepStrictEqual(changed(r.output), ["activation-switch", "health-probe", "preflight-check", "release-install", "release-upload"]);
    const newRelease = stack.outputs().releaseId;
    assert.notStrictEqual(newRelease, oldRelease);
    assert.match((await get(`${base}/`)).text, /version two/);
    // the same requirements: the new release links the venv the old one uses, nothing installed
    assert.match(r.output, /the venv of these requirements is built already/);
    const venvs = server.ssh(`readlink /srv/flaskapp/releases/${oldRelease}/.venv /srv/flaskapp/releases/${newRelease}/.venv`).trim().split("\n");
    assert.strictEqual(venvs[0], venvs[1]);
    assert.match(venvs[0], /^\/srv\/flaskapp\/venvs\/[0-9a-f]{12}$/);
    const notes = (await get(`${base}/api/notes`)).json();
    assert.ok(JSON.stringify(notes).includes("kept across deploys"), "data persists across deploys");
  });

  it("a config change (workers) rewrites the unit and restarts, without a new release", () => {
    const r = stack.run(["config", "set", "workers", "3"]);
    assert.strictEqual(r.status, 0, r.output);
    const up = stack.up();
    assert.strictEqual(up.status, 0, up.output);
    assert.deepStrictEqual(changed(up.output), ["activation-switch", "gunicorn-unit", "health-probe", "preflight-check"]);
    const workers = server.ssh("ps -o args= --ppid $(systemctl show -p MainPID --value fdeploy-flaskapp@main) | grep -c gunicorn").trim();
    assert.strictEqual(workers, "3");
  });

  it("a secret reaches the app through its root-only env file and nowhere else", async () => {
    const fp = (await get(`${base}/api/secret-fingerprint`)).json().sha256;
    assert.strictEqual(fp, crypto.createHash("sha256").update(SECRET).digest("hex"));
    assert.strictEqual(server.ssh("stat -c '%a %U' /etc/fdeploy/flaskapp/env /etc/fdeploy/flaskapp").trim(), "600 root\n700 root");
    // rotate it while watching the server's process list during the deploy
    const NEW = `rotated-${crypto.randomBytes(8).toString("hex")}`;
    stack.setConfig("secrets.SECRET_KEY", NEW, { secret: true });
    // env values may name the deploy's paths (issue 26): only these three names are replaced
    stack.setPlainConfigs({ "env.DATABASE_URL": "sqlite:///${DATABASE_PATH}", "env.UPLOADS": "${SHARED}/uploads in ${APP_ROOT}, not ${HOME}" });
    const watcher = watchProcessList(server, 600);
    const up = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const psLog = watcher.stop();
    assert.strictEqual(up.status, 0, up.output);
    assert.ok(psLog.length > 1000, "the process list was sampled");
    assert.ok(!psLog.includes(NEW), "the secret appeared in a process argument list");
    assert.ok(!up.output.includes(NEW), "the secret appeared in pulumi output");
    assert.ok(!stack.stateText().includes(NEW), "the secret appeared in the state in plaintext");
    assert.ok(!server.ssh("journalctl --no-pager -o cat").includes(NEW), "the secret appeared in the journal");
    const fp2 = (await get(`${base}/api/secret-fingerprint`)).json().sha256;
    assert.strictEqual(fp2, crypto.createHash("sha256").update(NEW).digest("hex"));
    const envFile = server.ssh("cat /etc/fdeploy/flaskapp/env");
    assert.match(envFile, /^DATABASE_URL="sqlite:\/\/\/\/srv\/flaskapp\/shared\/db\/app\.sqlite3"$/m);
    assert.match(envFile, /^UPLOADS="\/srv\/flaskapp\/shared\/uploads in \/srv\/flaskapp, not \$\{HOME\}"$/m);
  });

  it("drift: a stopped app, a hand-edited site and environment show in preview --refresh; up --refresh repairs them; a plain up reads nothing", async () => {
    const site = "/etc/nginx/sites-available/fdeploy-flaskapp.conf";
    server.ssh("systemctl stop fdeploy-flaskapp@main.service fdeploy-flaskapp@main.socket");
    server.ssh(`sed -i 's/server_tokens off;/server_tokens on;/' ${site} && systemctl reload nginx`);
    server.ssh("echo 'HAND_EDITED=1' >> /etc/fdeploy/flaskapp/env");
    assert.notStrictEqual((await get(`${base}/health`).catch(() => ({ status: 0 }))).status, 200, "the app still answers");
    const plain = stack.up();
    assert.strictEqual(plain.status, 0, plain.output);
    assert.deepStrictEqual(changed(plain.output), [], "a plain up ran a remote command");
    // without --diff: one line names what drifted (the CLI shows a dynamic resource's keys only with --diff)
    const brief = stack.run(["preview", "--refresh"]);
    assert.strictEqual(brief.status, 0, brief.output);
    const lines = brief.output.split("\nDiagnostics:\n")[1]?.split("\n").filter((l) => /server drift on flaskapp@/.test(l)) ?? [];
    assert.strictEqual(lines.length, 1, `expected one drift line in the diagnostics:\n${brief.output}`);
    assert.match(lines[0], /running \(false, want true\).*envInForce \(false\).*siteInForce \(false\).* pulumi up --refresh repairs it/);
    const preview = stack.run(["preview", "--refresh", "--diff"]);
    assert.strictEqual(preview.status, 0, preview.output);
    assert.match(preview.output, /server-state/);
    for (const k of ["running", "unitInForce", "envInForce", "siteInForce"]) {
      if (k !== "unitInForce") assert.match(preview.output, new RegExp(`~ ${k}`), `preview --refresh does not show ${k}:\n${preview.output}`);
    }
    const r = stack.run(["up", "--yes", "--skip-preview", "--refresh"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual((await get(`${base}/health`)).status, 200, "up --refresh did not bring the app back");
    assert.match(server.ssh(`grep server_tokens ${site}`), /server_tokens off;/);
    assert.strictEqual(server.trySsh("grep -q HAND_EDITED /etc/fdeploy/flaskapp/env").status, 1, "the hand edit is still in force");
    assert.strictEqual(stack.outputs().running, true);
    const again = stack.run(["preview", "--refresh"]);
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /server-state\s+update/, "drift reported after the repair");
    assert.doesNotMatch(again.output, /server drift/, "a drift line with nothing drifted");
  });

  it("drift: a deleted live release shows in preview --refresh; up --refresh reinstalls and runs it", async () => {
    const live = stack.outputs().releaseId;
    server.ssh(`systemctl stop fdeploy-flaskapp@main.service && rm -rf /srv/flaskapp/releases/${live}`);
    const preview = stack.run(["preview", "--refresh", "--diff"]);
    assert.strictEqual(preview.status, 0, preview.output);
    assert.match(preview.output, /[-~] release /, `preview --refresh does not show the missing release:\n${preview.output}`);
    assert.match(preview.output, new RegExp(`server drift on flaskapp@.*release \\("", want "${live}"\\)`), preview.output);
    const r = stack.run(["up", "--yes", "--skip-preview", "--refresh"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.trySsh(`test -x /srv/flaskapp/releases/${live}/.venv/bin/gunicorn`).status, 0, "the release was not reinstalled");
    assert.strictEqual((await get(`${base}/health`)).json().release, live);
    assert.strictEqual(stack.outputs().liveRelease, live);
    const again = stack.run(["preview", "--refresh"]);
    assert.strictEqual(again.status, 0, again.output);
    assert.doesNotMatch(again.output, /server-state\s+update/, `drift reported after the repair:\n${again.output}`);
  });

  it("an app that fails its health check fails the update with a useful error; the old release keeps serving", async () => {
    const live = stack.outputs().releaseId;
    app.edit("notes/__init__.py", (s) => s.replace('@app.get("/health")\n    def health():', '@app.get("/health")\n    def health():\n        return jsonify(status="broken on purpose"), 500\n    def _unused():'));
    const r = stack.up();
    assert.notStrictEqual(r.status, 0, "the update must fail");
    assert.match(r.output, /health check of slot main \(\/health\) failed within \d+s: HTTP 500/);
    assert.match(r.output, /broken on purpose/);
    assert.match(r.output, /last lines of the journal/);
    const health = await get(`${base}/health`);
    assert.strictEqual(health.status, 200);
    assert.strictEqual(health.json().release, live, "the previous release is serving again");
    // put the good code back: the next up converges
    app.edit("notes/__init__.py", (s) => s.replace('\n        return jsonify(status="broken on purpose"), 500\n    def _unused():', ""));
    const fixed = stack.up();
    assert.strictEqual(fixed.status, 0, fixed.output);
  });

  // issue 25: every remote step has a time limit; a killed `pulumi up` stops its remote step
  const serving = (url: string) => {
    let failed = 0, total = 0, stop = false;
    const loop = (async () => {
      while (!stop) {
        total++;
        if ((await get(url).catch(() => ({ status: 0 }))).status !== 200) failed++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return async () => { stop = true; await loop; return { failed, total }; };
  };
  const lockFree = () => server.trySsh("flock -n /run/fdeploy/flaskapp.lock true").status === 0;
  const running = (marker: string) => server.trySsh(`pgrep -f '${marker}'`).status === 0;

  /** With the command fixed, the next up runs at once: no lock or lease of the stopped step left. */
  const fixedUpRunsAtOnce = () => {
    stack.setConfig("releaseCommands[0]", "echo fixed");
    const t1 = Date.now();
    const fixed = stack.up();
    assert.strictEqual(fixed.status, 0, fixed.output);
    assert.doesNotMatch(fixed.output, /waiting for another deploy/);
    assert.ok((Date.now() - t1) / 1000 < 60, "the next up waited");
  };

  it("a release command reaches /bin/sh as written: systemd expands neither its $$ nor a single-quoted '$HOME'", () => {
    const cmd = "[ '$HOME' != /tmp ] && [ $$ -gt 1 ] && echo release-command-as-written";
    stack.setConfig("releaseCommands[0]", cmd);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /release-command-as-written/);
  });

  it("a release command that hangs is stopped at its time limit: the up fails naming the step, limit and setting; the site serves throughout; the next up runs at once", async () => {
    const live = stack.outputs().releaseId;
    stack.setPlainConfigs({ "releaseCommands[0]": "sleep 100000", "timeouts.releaseCommands": "15s" });
    const watch = serving(`${base}/health`);
    const t0 = Date.now();
    const r = await stack.runAsync(["up", "--yes", "--skip-preview"]);
    const took = (Date.now() - t0) / 1000;
    const served = await watch();
    assert.notStrictEqual(r.status, 0, "the up must fail");
    assert.match(r.output, /step release-commands-run did not finish within its time limit of 15s \(config timeouts\.releaseCommands\)/);
    assert.match(r.output, /pulumi config set --path timeouts\.releaseCommands/);
    assert.ok(took < 15 + 10 + 45, `the up took ${took}s`);
    assert.strictEqual(served.failed, 0, `${served.failed} of ${served.total} requests failed during the up`);
    assert.ok(!running("sleep 100000"), "the release command still runs on the server");
    assert.ok(lockFree(), "the deploy lock is still held");
    assert.strictEqual((await get(`${base}/health`)).json().release, live);
    fixedUpRunsAtOnce();
  });

  // pulumi starts each plugin in its own process group; a CI runner that cancels a job (or a closed
  // terminal's session) kills them all, and so does this test: pulumi and every process under it
  const killTree = (pid: number, signal: NodeJS.Signals) => {
    const kids = new Map<number, number[]>();
    for (const line of execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" }).trim().split("\n")) {
      const [p, pp] = line.trim().split(/\s+/).map(Number);
      kids.set(pp, [...(kids.get(pp) ?? []), p]);
    }
    const all: number[] = [];
    const walk = (p: number) => { all.push(p); (kids.get(p) ?? []).forEach(walk); };
    walk(pid);
    for (const p of all) try { process.kill(p, signal); } catch { /* gone */ }
  };
  const interrupted = async (marker: string, stop: (pid: number) => Promise<void>) => {
    stack.setConfig("releaseCommands[0]", marker);
    const { child, done } = stack.upDetached();
    let ended: string | undefined;
    void done.then((r) => (ended = r.output));
    const deadline = Date.now() + 120000;
    while (!running(marker) && ended === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    assert.ok(running(marker), `the release command never started: ${ended ?? "(pulumi still runs)"}`);
    await stop(child.pid!);
    const stopped = Date.now();
    while ((running(marker) || !lockFree()) && Date.now() - stopped < 10000) await new Promise((r) => setTimeout(r, 250));
    const gone = (Date.now() - stopped) / 1000;
    assert.ok(!running(marker), `the release command still runs ${gone}s after pulumi was stopped`);
    assert.ok(lockFree(), "the deploy lock is still held");
    console.log(`      (the remote step and its lock were gone ${gone}s after pulumi was stopped)`);
    await done;
    // a killed pulumi leaves its own stack lock (file backend); the user clears it as pulumi says
    stack.run(["cancel", "--yes"]);
    fixedUpRunsAtOnce();
  };

  it("pulumi up killed (SIGKILL to it and its plugins) during a release command: the remote step is gone within 10 s, the lock is free, the next up runs at once", async () => {
    stack.mustRun(["config", "rm", "--path", "timeouts.releaseCommands"]);
    await interrupted("sleep 100001", async (pid) => killTree(pid, "SIGKILL"));
  });

  it("pulumi up cancelled (SIGINT, then SIGINT again: terminate) during a release command: the same", async () => {
    await interrupted("sleep 100002", async (pid) => {
      process.kill(pid, "SIGINT");
      await new Promise((r) => setTimeout(r, 2000));
      process.kill(pid, "SIGINT");
    });
    stack.mustRun(["config", "rm", "releaseCommands"]);
    const cleared = stack.up();
    assert.strictEqual(cleared.status, 0, cleared.output);
  });

  // issue 24: the wait for another deploy is a stack setting (timeouts.lockWait), not a server variable
  it("another stack's deploy holding the app: the up waits timeouts.lockWait, then fails naming that deploy and the setting; nothing changed; the next up converges", async () => {
    const live = stack.outputs().releaseId;
    const expires = Math.floor(Date.now() / 1000) + 900;
    server.ssh(`install -d -m 0700 /run/fdeploy && printf '%s' '{"deploy": "other-project/prod", "expires": ${expires}}' > /run/fdeploy/flaskapp.lease && chmod 0600 /run/fdeploy/flaskapp.lease`);
    stack.setConfig("timeouts.lockWait", "10s");   // changes every step's command line: the up has steps to run
    const t0 = Date.now();
    const r = stack.up();
    const secs = (Date.now() - t0) / 1000;
    assert.notStrictEqual(r.status, 0, r.output);
    assert.match(r.output, /waiting for another deploy of 'flaskapp' on this server to finish \(the deploy of stack other-project\/prod/);
    assert.match(r.output, /another deploy of 'flaskapp' is running on this server: the deploy of stack other-project\/prod.*waited 1\ds.*timeouts\.lockWait/);
    assert.ok(secs < 120, `the up gave up after the 10 s it was told to wait, not the default 120 s (${secs.toFixed(0)} s)`);
    assert.strictEqual((await get(`${base}/health`)).json().release, live);
    server.ssh("rm -f /run/fdeploy/flaskapp.lease");
    const next = stack.up();
    assert.strictEqual(next.status, 0, next.output);
    stack.mustRun(["config", "rm", "--path", "timeouts.lockWait"]);
    const back = stack.up();
    assert.strictEqual(back.status, 0, back.output);
  });

  it("renaming appName in place is refused at preview and up, before anything on the server changes", () => {
    stack.setConfig("appName", "renamed");
    try {
      for (const r of [stack.preview(), stack.up()]) {
        assert.notStrictEqual(r.status, 0, r.output);
        assert.match(r.output, /flask-deploy:appName: renaming the app from 'flaskapp' to 'renamed' on 10\.213\.0\.\d+ is not done by an up/);
      }
      assert.strictEqual(server.trySsh("test -e /srv/renamed || id renamed || test -e /root/.fdeploy/renamed").status, 1, "the renamed app reached the server");
    } finally {
      stack.mustRun(["config", "rm", "appName"]);
    }
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.doesNotMatch(r.output, /(created|updated|replaced)/);
  });

  it("keepDataOnDestroy=false is refused at preview, naming the key and purge", () => {
    stack.setConfig("keepDataOnDestroy", "false");
    const r = stack.preview();
    stack.mustRun(["config", "rm", "keepDataOnDestroy"]);
    assert.notStrictEqual(r.status, 0);
    assert.match(r.output, /flask-deploy:keepDataOnDestroy: false is no longer supported: pulumi destroy always keeps the database/);
    // one order that works, with this stack's and app's names: remove the key, then purge
    assert.ok(r.output.includes(`Remove this key first (pulumi config rm --stack ${stack.name} keepDataOnDestroy); then, to delete them on purpose ` +
      `after a destroy: npm run purge -- --stack ${stack.name} --confirm flaskapp`), r.output);
  });

  it("destroy removes the service, the site and the releases, and keeps the data whatever the last up said", async () => {
    // the stale-setting trap: a server written by the previous version with KEEP_DATA=false
    server.ssh("sed -i 's/^KEEP_DATA=.*/KEEP_DATA=false/; $a KEEP_DATA=false' /etc/fdeploy/flaskapp.conf");
    const r = stack.destroy();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /kept the data of flaskapp: \/srv\/flaskapp\/shared .* npm run purge/);
    assert.ok(r.output.includes(`npm run purge -- --stack ${stack.name} --confirm flaskapp`), "destroy's message names this stack");
    assert.strictEqual(server.trySsh("systemctl cat fdeploy-flaskapp@main").status !== 0, true, "unit removed");
    assert.strictEqual(server.trySsh("test -e /etc/nginx/sites-enabled/fdeploy-flaskapp.conf").status, 1, "site removed");
    assert.strictEqual(server.trySsh("test -e /srv/flaskapp/releases").status, 1, "releases removed");
    assert.strictEqual(server.trySsh("test -s /srv/flaskapp/shared/db/app.sqlite3").status, 0, "database kept");
    assert.strictEqual(server.trySsh("test -s /etc/fdeploy/flaskapp/env").status, 0, "environment kept");
    const serving = await get(`${base}/health`).then((h) => h.status === 200, () => false);
    assert.strictEqual(serving, false, "the app no longer answers");
  });

  it("purge deletes the kept data only when confirmed with the app name", () => {
    const wrong = stack.purge("not-the-app");
    assert.strictEqual(wrong.status, 2, wrong.output);
    assert.match(wrong.output, /--confirm: repeat the app name \(flaskapp\)/);
    assert.strictEqual(server.trySsh("test -s /srv/flaskapp/shared/db/app.sqlite3").status, 0, "database kept");
    const r = stack.purge("flaskapp");
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /purged flaskapp/);
    for (const p of ["/srv/flaskapp", "/etc/fdeploy/flaskapp", "/etc/fdeploy/flaskapp.conf", "/root/.fdeploy/flaskapp"]) {
      assert.strictEqual(server.trySsh(`test -e ${p}`).status, 1, `${p} is left`);
    }
    assert.strictEqual(server.ssh("ls /var/log/nginx/ | grep -c '^fdeploy-flaskapp\\.' || true").trim(), "0", "the app's nginx logs are left");
    assert.strictEqual(server.trySsh("id flaskapp").status, 1, "the app user is left");
  });
});
