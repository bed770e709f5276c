// Offsite backups (issue #14): the app server replicates its database with Litestream to an SFTP
// target (sshd on a second test server). Rows are written under load, the app server is killed
// hard (its whole container, no shutdown), and the same stack is deployed to a brand-new server:
// the database is restored from the replica before the app starts. Every row acknowledged more
// than syncInterval + 1 s before the kill must be back. Prints the recovery point (rows and
// seconds lost) and the recovery time (new server booted -> serving).
// Then the old server comes back (issue 24 item 5): it does not replicate over the replica by itself,
// a deploy to it is refused before anything on it changes (naming both servers and backup.takeover),
// while the recovered server keeps replicating; with backup.takeover the deploy takes it over on purpose.
// Every unit the deploy writes scores <= 2.5 in systemd-analyze security (.e2e/reports/unit-exposure.md).
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { startServer, stopServer, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { assertUnitExposures } from "./fixture";
import { killHard, link, SERVERS, startWriter, withKeptDisk } from "./server-loss";
import { TestStack } from "./pulumi";
import { tempDir } from "../tmpdir";

const CACHE = process.env.FDEPLOY_CACHE || "/var/cache/fdeploy";
const SYNC_INTERVAL_S = 1;

/** npm run backup -- VERB [ARGS] for the stack: its output; it must succeed. */
function backupCommand(stack: TestStack, verb: string, ...args: string[]): string {
  const r = stack.backup(verb, ...args);
  assert.strictEqual(r.status, 0, r.output);
  return r.output;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls PRED every EVERYMS until it holds (true) or SECONDS went by (false): a wait on the condition, not a fixed sleep. */
async function within(seconds: number, pred: () => boolean, everyMs = 500): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (pred()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** The scheduled drill, run now on SERVER: its output (the latest replica restored, row counts). */
function drill(server: TestServer): string {
  server.ssh("systemctl start fdeploy-flaskapp-backup-verify.service");
  const inv = server.ssh("systemctl show -p InvocationID --value fdeploy-flaskapp-backup-verify.service").trim();
  return server.ssh(`journalctl _SYSTEMD_INVOCATION_ID=${inv} -o cat --no-pager`);
}

/** What a deploy to SERVER must not touch when it is refused: the backup's units and config, the live release. */
function backupState(server: TestServer): string {
  return server.ssh("sha256sum /etc/systemd/system/fdeploy-flaskapp-backup.service /etc/systemd/system/fdeploy-flaskapp-restore.service " +
    "/etc/fdeploy/flaskapp.backup.conf /etc/fdeploy/flaskapp.litestream.yml; readlink /srv/flaskapp/current /usr/local/lib/fdeploy/backup-agent; " +
    "systemctl show -p ActiveState -p InvocationID -p ExecMainStartTimestamp fdeploy-flaskapp-backup.service");
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const S3_KEY = "fdeploytestkey", S3_SECRET = "fdeploy-test-secret-0123456789";

/** The Versity S3 gateway (posix backend) on the target server, port 7070, bucket `backups`. */
function startS3(target: TestServer): void {
  const dir = path.join(CACHE, "versitygw");
  const bin = fs.existsSync(dir) ? fs.readdirSync(dir).map((v) => path.join(dir, v, "versitygw")).find((f) => fs.existsSync(f)) : undefined;
  assert.ok(bin, "no versitygw build: bash toolchain/versitygw.sh (scripts/setup.sh runs it)");
  execFileSync("scp", ["-q", "-i", target.keyPath, "-o", `UserKnownHostsFile=${target.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=yes", bin!, `root@${target.host}:/usr/local/bin/versitygw`]);
  target.ssh(`chmod 755 /usr/local/bin/versitygw && mkdir -p /srv/s3 && systemd-run --unit=s3gw --setenv=ROOT_ACCESS_KEY_ID=${S3_KEY} ` +
    `--setenv=ROOT_SECRET_ACCESS_KEY=${S3_SECRET} /usr/local/bin/versitygw --port :7070 posix /srv/s3 && ` +
    "for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:7070/ && break; sleep 0.2; done");
  const put = spawnSync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3",
    "--user", `${S3_KEY}:${S3_SECRET}`, "-X", "PUT",
    "-H", "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", `http://${target.host}:7070/backups`], { encoding: "utf8" });
  assert.match(put.stdout, /^200$/, `create bucket: ${put.stdout} ${put.stderr} ${target.ssh("journalctl -u s3gw -n 20 --no-pager")}`);
}

for (const kind of ["sftp", "s3"] as const)
describe(`offsite backups (Litestream, ${kind} target): surviving the loss of the server`, function () {
  this.timeout(900000);
  let target: TestServer, app: TestServer, fresh: TestServer, old: TestServer;
  let oldId: string, newId: string, refusal: string;
  let stack: TestStack;
  let keyDir: string;
  let replica: string, replicaDir: string;
  let migrationsDir: string;

  before(() => {
    const ls = path.join(CACHE, "litestream");
    assert.ok(fs.existsSync(ls), "no Litestream build: bash toolchain/litestream.sh (scripts/setup.sh runs it)");
    target = startServer("bkp-target", 152);
    keyDir = tempDir("fdeploy-bkp-");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(keyDir, "id"), "-C", "backup-test"]);
    if (kind === "sftp") {
      // the target: an unprivileged account that holds the replicas, reached with that key only
      target.ssh("useradd --create-home --shell /bin/bash backups && install -d -m 700 -o backups -g backups ~backups/.ssh " +
        "&& cat > ~backups/.ssh/authorized_keys && chown backups: ~backups/.ssh/authorized_keys", fs.readFileSync(path.join(keyDir, "id.pub"), "utf8"));
      replica = `sftp://backups@${target.host}/home/backups/flaskapp`;
      replicaDir = "/home/backups/flaskapp";
    } else {
      startS3(target);
      replica = "s3://backups/flaskapp";
      replicaDir = "/srv/s3/backups/flaskapp";
    }
    // the app server's disk outlives `down`: it comes back after the restore elsewhere (last test)
    spawnSync("bash", [SERVERS, "rm-disk", "backup"]);
    app = withKeptDisk(() => startServer("backup", 151));
    stack = new TestStack("backup");
    stack.target(app, {
      appDir: copyApp("backup").rel, migrationsDir: (() => { const m = copyMigrations("backup"); migrationsDir = m.dir; return m.rel; })(),
      "backup.replica": replica, "backup.litestream": "upload", "backup.verifyEvery": "24h",
      ...(kind === "sftp" ? { "backup.hostKey": target.hostKey } : { "backup.endpoint": `http://${target.host}:7070`, "backup.region": "us-east-1" }),
    });
    stack.setConfig("secrets.SECRET_KEY", "backup-test-secret", { secret: true });
    if (kind === "sftp") {
      stack.setConfig("backupSecrets.sftpKey", fs.readFileSync(path.join(keyDir, "id"), "utf8"), { secret: true });
    } else {
      stack.setConfig("backupSecrets.accessKeyId", S3_KEY, { secret: true });
      stack.setConfig("backupSecrets.secretAccessKey", S3_SECRET, { secret: true });
    }
  });
  after(() => {
    stack?.remove();
    for (const name of ["backup", "bkp-target", "bkp-new"]) spawnSync("bash", [SERVERS, "down", name]);
    spawnSync("bash", [SERVERS, "rm-disk", "backup"]);
    if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true });
  });

  it("deploys with continuous replication: WAL mode, credentials root-only, never in state or argv", async () => {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(app.ssh("systemctl is-active fdeploy-flaskapp-backup.service"), /^active/);
    // the lease names this server: its id and host
    oldId = app.ssh("cat /etc/fdeploy/flaskapp.backup-id").trim();
    assert.match(r.output, new RegExp(`lease: the replica is claimed for this server ${oldId} \\(host ${esc(app.host)}\\)`), r.output);
    assert.match(target.ssh(`cat ${replicaDir}/fdeploy-owner`), new RegExp(`^${oldId} ${esc(app.host)} \\d{4}-`));
    assert.strictEqual(app.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'PRAGMA journal_mode'").trim(), "wal");
    const credFile = kind === "sftp" ? "backup-sftp-key" : "backup.env";
    assert.strictEqual(app.ssh(`stat -c '%a %U' /etc/fdeploy/flaskapp/${credFile}`).trim(), "600 root");
    const secret = kind === "sftp" ? fs.readFileSync(path.join(keyDir, "id"), "utf8").split("\n")[1] : S3_SECRET;
    assert.ok(!stack.stateText().includes(secret), "the credential is in the state in plaintext");
    assert.ok(!r.output.includes(secret), "the credential is in pulumi's output");
    assert.ok(!app.ssh("ps -eo args").includes(secret), "the credential is on a command line");
    assert.ok(!app.ssh("journalctl --no-pager -o cat").includes(secret), "the credential is in the journal");
    assert.ok(!app.ssh("cat /etc/fdeploy/flaskapp/env").includes(secret), "the credential is in the app's environment");
    // the lease check (every 10 s, as the app user) runs the agent's copy: root's, nobody else may change it
    assert.match(app.ssh("readlink /usr/local/lib/fdeploy/backup-agent"), /^\/usr\/local\/lib\/fdeploy\/agent-[0-9a-f]{16}\n$/);
    assert.strictEqual(app.ssh("find -L /usr/local/lib/fdeploy/backup-agent/ \\( ! -user root -o -perm /022 \\) -print"), "");
    assert.doesNotMatch(app.ssh("journalctl -u fdeploy-flaskapp-backup.service -o cat --no-pager"), /Traceback|server agent failed/);
    // the unit's process: that copy's backup-run, as the app user (Litestream its child)
    const main = app.ssh("ps -o user=,args= -p $(systemctl show -p MainPID --value fdeploy-flaskapp-backup.service)");
    assert.match(main, /^flaskapp +\/usr\/bin\/python3 -I -B \/usr\/local\/lib\/fdeploy\/backup-agent backup-run --app flaskapp\n$/, main);
    // a row reaches the target within the sync interval (+ slack)
    const res = await fetch(`http://${app.host}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"body":"first"}' });
    assert.strictEqual(res.status, 201);
    const ltx = /db\/app\.sqlite3\/.*\.ltx/;
    const replicated = () => target.ssh(`find ${replicaDir} -type f | head -50`);
    await within(3, () => ltx.test(replicated()));
    assert.match(replicated(), ltx);
    // the scheduled drill runs (here: by hand) and passes
    assert.match(app.ssh("systemctl is-enabled fdeploy-flaskapp-backup-verify.timer"), /^enabled/);
    app.ssh("systemctl start fdeploy-flaskapp-backup-verify.service");
    assert.match(app.ssh("journalctl -u fdeploy-flaskapp-backup-verify.service -o cat --no-pager"), /integrity_check: ok/);
    // every unit this deploy wrote (backup, restore, drill, the slots) is sandboxed: systemd-analyze security <= 2.5
    assertUnitExposures(app, "flaskapp", `backup.test.ts, ${kind} target`);
  });

  it("a deploy with the target down warns and goes on; replication catches up; units of a server deployed before " +
     "(/usr/local/lib/fdeploy/backup-run.sh) are rewritten", async () => {
    // what the previous main installed: the units ran backup-run.sh (bash), which the agent's backup-run replaced
    app.ssh("sed -i 's|^ExecStart=.* backup-run --app flaskapp$|ExecStart=/usr/local/lib/fdeploy/backup-run.sh run /etc/fdeploy/flaskapp.backup.conf|; " +
      "s|^ExecStart=.* backup-verify-db --app flaskapp --set DB=\\(.*\\)$|ExecStart=/usr/local/lib/fdeploy/backup-run.sh verify /etc/fdeploy/flaskapp.backup.conf \\1|' " +
      "/etc/systemd/system/fdeploy-flaskapp-backup.service /etc/systemd/system/fdeploy-flaskapp-backup-verify.service && " +
      "printf '#!/bin/sh\\nexit 1\\n' > /usr/local/lib/fdeploy/backup-run.sh && chmod 755 /usr/local/lib/fdeploy/backup-run.sh && systemctl daemon-reload");
    assert.strictEqual(app.ssh("grep -l backup-run.sh /etc/systemd/system/fdeploy-flaskapp-backup*.service | wc -l").trim(), "2");
    link("bkp-target", "down");
    try {
      stack.setConfig("backup.retention", "48h"); // re-runs the backup step
      const r = stack.up();
      assert.strictEqual(r.status, 0, r.output);
      assert.match(r.output, /warning.*replica cannot be reached/i);
      assert.strictEqual(app.ssh("grep -l backup-run.sh /etc/systemd/system/fdeploy-flaskapp-backup* /etc/fdeploy/flaskapp.* | wc -l").trim(), "0");
      assert.strictEqual(app.trySsh("test -e /usr/local/lib/fdeploy/backup-run.sh").status, 1, "backup-run.sh is still installed");
      assert.match(app.ssh("ps -o args= -p $(systemctl show -p MainPID --value fdeploy-flaskapp-backup.service)"), /backup-agent backup-run --app flaskapp/);
      const res = await fetch(`http://${app.host}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"body":"while the target was down"}' });
      assert.strictEqual(res.status, 201);
    } finally {
      link("bkp-target", "up");
    }
  });

  it("server loss: a new server restores the replica before the app starts; rows older than interval + 1 s survive", async () => {
    const writer = startWriter(`http://${app.host}`);
    await sleep(15000);
    const killedAt = Date.now();
    killHard("backup");
    await writer.stop();
    stopServer("backup");
    const acked = writer.rows.filter((w) => w.at <= killedAt);
    assert.ok(acked.length > 50, `only ${acked.length} rows were written`);

    const t0 = Date.now();
    fresh = startServer("bkp-new", 153);
    const booted = Date.now();
    stack.target(fresh);
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /restored from the replica/);
    // a brand-new server (no database) takes the replica over by itself: that is the recovery
    newId = fresh.ssh("cat /etc/fdeploy/flaskapp.backup-id").trim();
    assert.match(r.output, new RegExp(`took the replica over from server ${oldId} .*this server has no database`), r.output);
    const res = await fetch(`http://${fresh.host}/api/notes`);
    assert.strictEqual(res.status, 200);
    const serving = Date.now();
    const ids = new Set(((await res.json()) as { id: number }[]).map((n) => n.id));

    const mustHave = acked.filter((w) => w.at < killedAt - (SYNC_INTERVAL_S + 1) * 1000);
    const missing = mustHave.filter((w) => !ids.has(w.id));
    const lost = acked.filter((w) => !ids.has(w.id));
    const lastBack = Math.max(...acked.filter((w) => ids.has(w.id)).map((w) => w.at));
    const report = [
      `rows acknowledged before the kill: ${acked.length} (writer failures: ${writer.failures})`,
      `recovery point: ${lost.length} rows lost, the newest restored row was acknowledged ${((killedAt - lastBack) / 1000).toFixed(2)} s before the kill`,
      `recovery time: ${((serving - booted) / 1000).toFixed(1)} s from the new server booted to serving (pulumi up incl. restore), ${((serving - t0) / 1000).toFixed(1)} s incl. its boot`,
    ].join("\n");
    console.log(report);
    fs.mkdirSync(path.join(__dirname, "../../.e2e/reports"), { recursive: true });
    fs.writeFileSync(path.join(__dirname, `../../.e2e/reports/backup-${kind}.md`), report + "\n");
    assert.deepStrictEqual(missing.map((w) => w.id), [], `rows older than ${SYNC_INTERVAL_S + 1} s before the kill are missing`);
    assert.ok(ids.has(1), "the row written before the target went down is back");
  });

  it("npm run backup -- verify: the replica restores, passes integrity_check, row counts match", async () => {
    await sleep(3000);
    const out = backupCommand(stack, "verify");
    console.log(out);
    assert.match(out, /integrity_check: ok/);
    assert.match(out, /verify: ok/);
    // the replica's count against the test's own count of the live database (not the product's)
    const m = /rows notes: replica (\d+), live (\d+)/.exec(out);
    const live = fresh.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT count(*) FROM notes'").trim();
    assert.ok(Number(live) > 0, "no rows to compare");
    assert.ok(m && m[1] === live && m[2] === live, `the replica has ${m?.[1]} rows, the live database ${live}:\n${out}`);
    const status = backupCommand(stack, "status");
    console.log(status);
    assert.match(status, /replication: active/);
    assert.match(status, /lease: this server/);
    assert.match(status, /lag: \d+ transactions behind/);
  });

  it("npm run backup -- restore: into place with the app stopped, the old file kept aside, the app serving again", async () => {
    await sleep(2000);
    const before = ((await (await fetch(`http://${fresh.host}/api/notes`)).json()) as unknown[]).length;
    const out = backupCommand(stack, "restore");
    assert.match(out, /restore: done/, out);
    assert.match(fresh.ssh("ls /srv/flaskapp/shared/db/"), /app\.sqlite3\.before-restore-/);
    const res = await fetch(`http://${fresh.host}/api/notes`);
    assert.strictEqual(res.status, 200);
    assert.strictEqual(((await res.json()) as unknown[]).length, before);
    assert.match(fresh.ssh("systemctl is-active fdeploy-flaskapp-backup.service"), /^active/);
  });

  it("backup.beforeChange: replica: a destructive migration's undo is the replica's restore point, no local copy; " +
     "fdeploy backup restore --txid brings the rows back; replication stopped: the deploy falls back to a local copy, saying why", async () => {
    const t0 = Date.now();
    const notes = () => Number(fresh.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT count(*) FROM notes'").trim());
    const copies = () => fresh.ssh("ls /srv/flaskapp/shared/backups | grep -c '^app-' || true").trim();
    const res = await fetch(`http://${fresh.host}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"body":"before the destructive migration"}' });
    assert.strictEqual(res.status, 201);
    const rows = notes(), kept = copies();
    fs.writeFileSync(path.join(migrationsDir, "0003_clear_notes.up.sql"), "DELETE FROM notes;\n");
    fs.writeFileSync(path.join(migrationsDir, "0003_clear_notes.down.sql"), "SELECT 1;\n");
    stack.setConfig("backup.beforeChange", "replica");
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    const m = /undo: the replica's restore point \(backup\.beforeChange: replica; replication healthy, caught up in ([\d.]+) s\): txid ([0-9a-f]{16}), written (\S+); no local copy of app\.sqlite3/.exec(r.output);
    assert.ok(m, r.output);
    console.log(`undo = the replica's restore point: txid ${m![2]}, caught up in ${m![1]} s`);
    assert.strictEqual(notes(), 0, "the destructive migration did not run");
    assert.strictEqual(copies(), kept, "a local copy was taken although the replica's point was the undo");
    const rec = JSON.parse(fresh.ssh("tail -n 1 /etc/fdeploy/flaskapp/undo-points.jsonl"));
    assert.strictEqual(rec.txid, m![2]);
    assert.strictEqual(fresh.ssh("stat -c '%a %U' /etc/fdeploy/flaskapp/undo-points.jsonl").trim(), "600 root");
    // the undo: the app's database back to that point (the rows the migration deleted are back)
    const t1 = Date.now();
    const out = backupCommand(stack, "restore", "--txid", m![2]);
    assert.match(out, new RegExp(`restore: done \\(to txid ${m![2]}\\)`), out);
    console.log(`restore --txid: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    assert.strictEqual(notes(), rows, out);
    const back = await get(`http://${fresh.host}/api/notes`);   // a connection of its own: the app was just restarted
    assert.ok((back.json() as { body: string }[]).some((n) => n.body === "before the destructive migration"), back.text);
    assert.match(fresh.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT max(version) FROM schema_migrations'"), /^2\n/);
    // replication not running: the next schema change takes the local copy, and says why
    fs.writeFileSync(path.join(migrationsDir, "0003_clear_notes.up.sql"), "CREATE TABLE undo_probe (id INTEGER);\n");
    fs.writeFileSync(path.join(migrationsDir, "0003_clear_notes.down.sql"), "DROP TABLE undo_probe;\n");
    fresh.ssh("systemctl stop fdeploy-flaskapp-backup.service");
    try {
      const f = stack.up();
      assert.strictEqual(f.status, 0, f.output);
      assert.match(f.output, /undo: a local copy \(backup\.beforeChange: replica falls back\): replication is not running \(its unit is inactive\)/, f.output);
      assert.match(f.output, /backup: app\.sqlite3, .* in [\d.]+ s ->/, f.output);
      assert.strictEqual(Number(copies()), Number(kept) + 1);
      assert.strictEqual(notes(), rows);
    } finally {
      fresh.ssh("systemctl start fdeploy-flaskapp-backup.service");
      stack.setConfig("backup.beforeChange", "copy");
    }
    console.log(`beforeChange: replica cases: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  it("the old server comes back: it finds the replica claimed by the new one and does not replicate over it", async () => {
    old = withKeptDisk(() => startServer("backup", 151));
    // its unit checks the lease when it starts and stays stopped (exit 3) once it finds it taken
    const journal = () => old.ssh("journalctl -u fdeploy-flaskapp-backup.service --no-pager -o cat | tail -n 20");
    const booted = Date.now();
    await within(8, () => /the replica now belongs to server/.test(journal()) &&
      old.trySsh("systemctl is-active --quiet fdeploy-flaskapp-backup.service").status !== 0);
    console.log(`old server: replica found claimed, replication stopped ${((Date.now() - booted) / 1000).toFixed(1)} s after its boot (was a fixed 8 s wait)`);
    assert.match(journal(), /the replica now belongs to server/, journal());
    assert.notStrictEqual(old.trySsh("systemctl is-active --quiet fdeploy-flaskapp-backup.service").status, 0);
    // the new server's rows are still what the replica holds
    const res = await fetch(`http://${fresh.host}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"body":"after the old server came back"}' });
    assert.strictEqual(res.status, 201);
    await sleep(3000);
    const out = backupCommand(stack, "verify");
    // the replica's count against the test's own count of the live database (not the product's)
    const m = /rows notes: replica (\d+), live (\d+)/.exec(out);
    const live = fresh.ssh("sqlite3 /srv/flaskapp/shared/db/app.sqlite3 'SELECT count(*) FROM notes'").trim();
    assert.ok(Number(live) > 0, "no rows to compare");
    assert.ok(m && m[1] === live && m[2] === live, `the replica has ${m?.[1]} rows, the live database ${live}:\n${out}`);
  });

  it("the old server comes back: a deploy to it is refused before anything changes, naming both servers and backup.takeover; " +
     "the recovered server keeps replicating (its rows written after the recovery are in a later restore)", async () => {
    const before = backupState(old);
    stack.target(old);
    const t0 = Date.now();
    const r = stack.up();
    console.log(`refused deploy: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.notStrictEqual(r.status, 0, r.output);
    refusal = r.output;
    console.log(r.output.split("\n").find((l) => l.includes("belongs to another server"))?.trim());
    assert.match(r.output, new RegExp(`belongs to another server: ${newId} \\(host ${esc(fresh.host)}, claimed `), r.output);
    assert.match(r.output, new RegExp(`this server is ${oldId} \\(host ${esc(old.host)}\\) and has a database of its own`), r.output);
    assert.match(r.output, new RegExp(`pulumi config set --path backup\\.takeover ${newId}`), r.output);
    assert.strictEqual(backupState(old), before, "the refused deploy changed the old server's backup");
    assert.notStrictEqual(old.trySsh("systemctl is-active --quiet fdeploy-flaskapp-backup.service").status, 0);
    assert.match(target.ssh(`cat ${replicaDir}/fdeploy-owner`), new RegExp(`^${newId} `));
    // the recovered server kept the lease and replicates: a row written now is in the next restore
    assert.match(fresh.ssh("systemctl is-active fdeploy-flaskapp-backup.service"), /^active/);
    const res = await fetch(`http://${fresh.host}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"body":"after the refused deploy"}' });
    assert.strictEqual(res.status, 201);
    const live = ((await (await fetch(`http://${fresh.host}/api/notes`)).json()) as unknown[]).length;
    await sleep(3000);
    const out = drill(fresh);
    const m = /rows notes: replica (\d+), live (\d+)/.exec(out);
    assert.ok(m && Number(m[1]) === live && m[1] === m[2], `the replica lacks rows the recovered server wrote (live ${live}):\n${out}`);
    console.log(`recovered server after the refused deploy: replica ${m![1]} rows = live ${live}`);
  });

  it("takeover on purpose: backup.takeover set to the owner's id the refusal printed; the deploy claims it, the other server stops replicating; " +
     "the setting left in the stack does not let that server take it back", async () => {
    const id = /pulumi config set --path backup\.takeover ([0-9a-f]{32})/.exec(refusal)![1];
    stack.setConfig("backup.takeover", id);
    const t0 = Date.now();
    const r = stack.up();
    console.log(`takeover deploy: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`this server ${oldId} \\(host ${esc(old.host)}\\) took the replica over from server ${newId} .*backup\\.takeover names that server`), r.output);
    assert.match(target.ssh(`cat ${replicaDir}/fdeploy-owner`), new RegExp(`^${oldId} ${esc(old.host)} `));
    assert.match(old.ssh("systemctl is-active fdeploy-flaskapp-backup.service"), /^active/);
    // the server it was taken from finds out at its next check (every 10 s) and stays stopped
    let state = "";
    await within(30, () => (state = fresh.trySsh("systemctl is-active fdeploy-flaskapp-backup.service").stdout.trim()) !== "active");
    assert.notStrictEqual(state, "active");
    const why = fresh.ssh("journalctl -u fdeploy-flaskapp-backup.service --no-pager -o cat | grep 'the replica now belongs' | tail -n 1");
    assert.match(why, new RegExp(`the replica now belongs to server ${oldId} \\(host ${esc(old.host)}`), why);
    // backup.takeover (still naming the recovered server) applies only while that server owns the
    // replica: a deploy to it now is refused like any other
    stack.target(fresh);
    const back = stack.up();
    assert.notStrictEqual(back.status, 0, back.output);
    assert.match(back.output, new RegExp(`belongs to another server: ${oldId} .*backup\\.takeover names this server itself`), back.output);
    assert.match(target.ssh(`cat ${replicaDir}/fdeploy-owner`), new RegExp(`^${oldId} `));
  });
});
