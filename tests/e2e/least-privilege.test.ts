// Least privilege, tested as an attacker who controls the Flask app (code execution as its Unix
// user, the usual outcome of an app bug), on a server that hosts two apps. Each attack runs as the
// app user (runuser: the attacker without even the unit's sandbox), then a normal deploy runs; each
// case asserts that no root-owned file outside the app changed, no secret leaked, the deploy
// succeeded or failed with a clear message, and the live site kept serving.
// (fs.protected_symlinks does not matter here: shared/ is not a sticky world-writable folder, and
// the deploy lock is no longer in one.)
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp, copyMigrations, get } from "./app-copy";
import { unitExposure } from "./fixture";
import { startLoad } from "./load";
import { PROJECT_DIR, TestStack } from "./pulumi";
import { BASE_PACKAGES } from "../../components/base-system";

const A = "appa", B = "appb";
const SECRET_A = "secret-of-app-a-7f3c", SECRET_B = "secret-of-app-b-91d2";
const rows: string[] = [];

describe("least privilege: a hostile app on a server with two apps", function () {
  this.timeout(900000);
  let server: TestServer;
  let a: TestStack;
  let b: TestStack;

  /** Run a shell script (on stdin) as the app user: the attacker. */
  const asApp = (app: string, script: string) => server.trySsh(`runuser -u ${app} -- /bin/sh -s`, script);
  /** owner, mode and content hash of root-owned bait files the attacks aim at */
  const bait = () => server.ssh("stat -c '%n %U:%G %a' /var/lib/fdeploy-bait /root/bait-file /etc/shadow; sha256sum /root/bait-file /etc/shadow");
  /**
   * A deploy that re-runs the base system: base.sh create exactly as the base step runs it (as
   * root, parameters on stdin), then a normal up under load.
   */
  async function redeploy(stack: TestStack, app: string, base: string): Promise<{ status: number; output: string; failed: number }> {
    const params = JSON.stringify({ APP: app, APP_ROOT: `/srv/${app}`, APP_USER: app, PACKAGES: BASE_PACKAGES.join(" ") });
    const baseRun = server.trySsh(`bash "$(ls -td /root/.fdeploy/${app}/scripts-*/ | head -n1)base.sh" create`, params);
    const load = startLoad(`${base}/health`, { concurrency: 2, maxSeconds: 240 });
    const r = baseRun.status === 0 ? await stack.runAsync(["up", "--yes", "--skip-preview"]) : { status: 0, output: "" };
    const l = await load.stop();
    return { status: baseRun.status || r.status, output: baseRun.stdout + baseRun.stderr + r.output, failed: l.failures };
  }

  before(() => {
    server = startServer("lpriv", 101);
    server.ssh("install -d -m 755 /var/lib/fdeploy-bait && printf 'root only\\n' >/root/bait-file && chmod 600 /root/bait-file");
    for (const [name, app, secret, serverName] of [["lpa", A, SECRET_A, "_"], ["lpb", B, SECRET_B, "b.example.test"]] as const) {
      const code = copyApp(name);
      const migrations = copyMigrations(name);
      const s = new TestStack(name);
      s.target(server, { appName: app, appDir: code.rel, migrationsDir: migrations.rel, serverName, healthTimeoutSeconds: "15" });
      s.setConfig("secrets.SECRET_KEY", secret, { secret: true });
      const r = s.up();
      assert.strictEqual(r.status, 0, r.output);
      if (app === A) a = s; else b = s;
    }
  });
  after(() => {
    a?.remove();
    b?.remove();
    const report = path.join(PROJECT_DIR, ".e2e/reports/least-privilege.md");
    fs.mkdirSync(path.dirname(report), { recursive: true });
    fs.writeFileSync(report, ["| attack | result |", "|---|---|", ...rows].join("\n") + "\n");
    console.log(`\n${["least privilege results:", ...rows].join("\n")}\n`);
  });

  const base = () => `http://${server.host}`;

  it("1. shared/backups swapped for a symlink to a root-owned folder: root never follows it", async () => {
    const before = bait();
    assert.strictEqual(asApp(A, `rm -rf /srv/${A}/shared/backups && ln -s /var/lib/fdeploy-bait /srv/${A}/shared/backups`).status, 0);
    const r = await redeploy(a, A, base());
    assert.strictEqual(bait(), before, "a root-owned file changed");
    assert.strictEqual(r.failed, 0, "the live site stopped serving");
    if (r.status !== 0) assert.match(r.output, /could not create shared\/db and shared\/backups as appa/);
    asApp(A, `rm -f /srv/${A}/shared/backups`);
    const fixed = await redeploy(a, A, base());
    assert.strictEqual(fixed.status, 0, fixed.output);
    rows.push(`| shared/backups -> /var/lib/fdeploy-bait (root 0755, symlink), then a deploy | root-owned files unchanged; deploy ${r.status === 0 ? "succeeded" : "refused it by name"}; 0 failed requests |`);
  });

  it("2+3. the environment is root-only: the app cannot read it, redirect its write, or swap in another app's", async () => {
    const before = bait();
    // the old attack surface: a planted .env symlink (to app B's secrets) and a loop swapping files in shared/
    assert.strictEqual(asApp(A, `ln -sfn /etc/fdeploy/${B}/env /srv/${A}/shared/.env`).status, 0);
    assert.notStrictEqual(asApp(A, `cat /etc/fdeploy/${A}/env`).status, 0, "the app reads its env file");
    assert.notStrictEqual(asApp(A, `cat /etc/fdeploy/${B}/env`).status, 0, "the app reads another app's env file");
    a.setConfig("secrets.SECRET_KEY", `${SECRET_A}-2`, { secret: true });
    const r = await redeploy(a, A, base());
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(bait(), before);
    assert.strictEqual(server.trySsh(`test -L /srv/${A}/shared/.env`).status, 1, "the planted .env symlink is gone");
    // kill the app: systemd restarts it; its environment must hold its own secret, never B's
    server.ssh(`systemctl kill -s KILL fdeploy-${A}@main.service; sleep 4`);
    const environ = server.ssh(`cat /proc/$(systemctl show -p MainPID --value fdeploy-${A}@main.service)/environ | tr '\\0' '\\n'`);
    assert.ok(!environ.includes(SECRET_B), "app A got app B's secret");
    assert.ok(environ.includes(`${SECRET_A}-2`), "app A lost its own secret");
    assert.strictEqual(r.failed, 0);
    rows.push("| .env symlinked to another app's env file; read /etc/fdeploy/*/env; kill -9 and restart | permission denied; the app's environment holds only its own secret |");
  });

  it("two apps cannot read each other's data", () => {
    for (const [me, other] of [[A, B], [B, A]]) {
      for (const p of [`/srv/${other}/shared/db/app.sqlite3`, `/srv/${other}/shared/backups`, `/etc/fdeploy/${other}/env`]) {
        assert.notStrictEqual(asApp(me, `cat ${p} || ls ${p}`).status, 0, `${me} reads ${p}`);
      }
    }
    rows.push("| each app reads the other's database, backups, env file | permission denied both ways |");
  });

  it("4. the deploy lock: the app can neither hold it nor plant it", async () => {
    assert.notStrictEqual(asApp(A, `exec 9>/run/fdeploy/${A}.lock && flock -n 9`).status, 0, "the app opened the lock");
    assert.notStrictEqual(asApp(A, "touch /run/fdeploy/x").status, 0, "the app writes into the lock folder");
    // the old lock path: an app holding it (forever) does not delay a deploy
    server.ssh(`setsid runuser -u ${A} -- sh -c 'exec 9>/run/lock/fdeploy-${A}.lock; flock 9; sleep 600' </dev/null >/dev/null 2>&1 &`);
    a.setConfig("env.APP_GREETING", "deployed while the app holds the old lock"); // steps that take the lock
    const t0 = Date.now();
    const r = await redeploy(a, A, base());
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /env-file\s+updated/, "the deploy ran the environment step");
    assert.ok(Date.now() - t0 < 100000, "the deploy waited for a lock the app held");
    server.ssh(`pkill -u ${A} -f 'sleep 600' || true`);
    rows.push(`| open/hold the deploy lock, plant files in its folder | permission denied; a deploy while the app holds the old lock path took ${((Date.now() - t0) / 1000).toFixed(0)} s |`);
  });

  it("5. pip runs as the build user in a sandbox, never as root; the app cannot change its code or venv", () => {
    const id = a.outputs().releaseId;
    const owners = server.ssh(`stat -c '%U' /srv/${A}/releases/${id} /srv/${A}/releases/${id}/wsgi.py; find -H /srv/${A}/releases/${id}/.venv -printf '%u\\n' | sort -u`).trim().split("\n");
    assert.deepStrictEqual(owners.slice(0, 2), ["root", "root"], "the release's code is root's");
    assert.strictEqual(owners.length, 3, `one owner for the venv: ${owners.slice(2)}`);
    assert.match(owners[2], /^fdbuild-[0-9a-f]{10}$/, "the venv was built by the build user");
    assert.notStrictEqual(asApp(A, `touch /srv/${A}/releases/${id}/.venv/bin/x /srv/${A}/releases/${id}/x`).status, 0);
    rows.push(`| who ran pip; write into the release | code root's, .venv ${owners[2]}'s (sandboxed transient unit); the app writes neither |`);
  });

  it("6. a forged schema version in the app's database does not reach the history or a rollback", async () => {
    const db = `/srv/${A}/shared/db/app.sqlite3`;
    const sql = (q: string) => asApp(A, `python3 - <<'PY'\nimport sqlite3\nc = sqlite3.connect("${db}")\nc.executescript("""${q}""")\nc.commit()\nPY\n`);
    // the app's database now claims schema version 0: a rollback that trusted it would revert every migration
    assert.strictEqual(sql("ALTER TABLE schema_migrations RENAME TO sm_saved; CREATE VIEW schema_migrations AS SELECT 0 AS version").status, 0);
    try {
      a.setConfig("workers", "3");
      const r = await redeploy(a, A, base());
      assert.strictEqual(r.status, 0, r.output);
      const history = server.ssh(`cat /srv/${A}/history.log`);
      assert.match(history.trim().split("\n").pop()!, / schema=2$/, "the schema version is the migration set's, not the database's");
      assert.ok(a.outputs().releaseHistory.every((h: any) => h.schemaVersion === "2"), JSON.stringify(a.outputs().releaseHistory));
    } finally {
      sql("DROP VIEW schema_migrations; ALTER TABLE sm_saved RENAME TO schema_migrations");
    }
    rows.push("| schema_migrations replaced by a view claiming version 0 | history and releaseHistory record schema=2, from the root-owned migration set (the database is never read for it) |");
  });

  it("7. nginx: no dotfiles, no version, logs not world-readable", async () => {
    const id = a.outputs().releaseId;
    server.ssh(`printf 'hidden\\n' >/srv/${A}/releases/${id}/static/.secret`); // as if a release shipped one
    try {
      const r = await fetch(`${base()}/static/.secret`);
      assert.strictEqual(r.status, 404);
      assert.strictEqual(r.headers.get("server"), "nginx", "the Server header names a version");
      assert.strictEqual((await get(`${base()}/static/style.css`)).status, 200);
    } finally {
      server.ssh(`rm -f /srv/${A}/releases/${id}/static/.secret`);
    }
    assert.strictEqual(server.ssh(`stat -c '%a' /var/log/nginx/fdeploy-${A}.access.log`).trim(), "640");
    rows.push("| GET /static/.secret, Server header, access log mode | 404; `Server: nginx`; 0640 |");
  });

  it("8. an existing account the deploy did not create is never adopted as an app user", () => {
    server.ssh("id victim >/dev/null 2>&1 || useradd --system --no-create-home victim");
    const code = copyApp("lpv");
    const s = new TestStack("lpv");
    try {
      s.target(server, { appName: "victim", appDir: code.rel, serverName: "v.example.test" });
      s.setConfig("secrets.SECRET_KEY", "x", { secret: true });
      const r = s.up();
      assert.notStrictEqual(r.status, 0);
      assert.match(r.output, /account 'victim' exists and was not created by flask-deploy for 'victim'; choose another appName/);
      assert.strictEqual(server.trySsh("test -e /etc/systemd/system/fdeploy-victim@.service").status, 1);
    } finally {
      s.destroy();
      s.remove();
    }
    rows.push("| appName of an existing account (victim) | refused by base.sh, naming appName; nothing runs as it |");
  });

  it("9. uploads are private to the SSH user and old ones are pruned", async () => {
    assert.strictEqual(server.ssh("stat -c '%a' /root/.fdeploy /root/.fdeploy/appa").trim(), "700\n700");
    server.ssh("mkdir -p /root/.fdeploy/appa/scripts-000000000000 && touch -d '2 hours ago' /root/.fdeploy/appa/scripts-000000000000");
    a.setConfig("workers", "2");
    const r = await redeploy(a, A, base());
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.trySsh("test -e /root/.fdeploy/appa/scripts-000000000000").status, 1, "an old upload was kept");
    rows.push("| ~/.fdeploy modes; a 2-hour-old upload | 0700; pruned by the next activation |");
  });

  it("10. systemd-analyze security: the app unit's exposure is at most 2.5", () => {
    const { exposure, rating } = unitExposure(server, `fdeploy-${A}@main.service`);
    console.log(`      systemd-analyze security fdeploy-${A}@main.service: ${exposure} ${rating}`);
    assert.ok(exposure <= 2.5, `exposure ${exposure} > 2.5`);
    rows.push(`| systemd-analyze security fdeploy-${A}@main.service | exposure ${exposure} (goal <= 2.5) |`);
  });
});
