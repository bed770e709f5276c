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
import { spawn } from "child_process";
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
  let codeA: ReturnType<typeof copyApp>;

  /** Run a shell script (on stdin) as the app user: the attacker. */
  const asApp = (app: string, script: string) => server.trySsh(`runuser -u ${app} -- /bin/sh -s`, script);
  /** owner, mode, mtime and content of the root-owned bait the attacks aim at: every entry of the bait folder too */
  const bait = () => server.ssh("stat -c '%n %U:%G %a %Y' /var/lib/fdeploy-bait /root/bait-file /etc/shadow; sha256sum /root/bait-file /etc/shadow; " +
    "find /var/lib/fdeploy-bait -mindepth 1 -printf '%p %y %U:%G %m %T@\\n' | sort");
  /**
   * A deploy that re-runs the base system: the agent's base-create exactly as the base step runs it (as
   * root, parameters on stdin), then a normal up under load.
   */
  async function redeploy(stack: TestStack, app: string, base: string): Promise<{ status: number; output: string; failed: number }> {
    const params = JSON.stringify({ APP: app, APP_ROOT: `/srv/${app}`, APP_USER: app, PACKAGES: BASE_PACKAGES.join(" ") });
    const baseRun = server.trySsh(`python3 -I -B "$(ls -td /root/.fdeploy/${app}/scripts-*/ | head -n1)agent" base-create`, params);
    const load = startLoad(`${base}/health`, { concurrency: 2, maxSeconds: 240 });
    const r = baseRun.status === 0 ? await stack.runAsync(["up", "--yes", "--skip-preview"]) : { status: 0, output: "" };
    const l = await load.stop();
    return { status: baseRun.status || r.status, output: baseRun.stdout + baseRun.stderr + r.output, failed: l.failures };
  }

  before(() => {
    server = startServer("lpriv", 101);
    server.ssh("install -d -m 755 /var/lib/fdeploy-bait && printf 'root only\\n' | tee /root/bait-file >/var/lib/fdeploy-bait/keep && chmod 600 /root/bait-file");
    for (const [name, app, secret, serverName] of [["lpa", A, SECRET_A, "_"], ["lpb", B, SECRET_B, "b.example.test"]] as const) {
      const code = copyApp(name);
      if (app === A) codeA = code;
      const migrations = copyMigrations(name);
      const s = new TestStack(name);
      s.target(server, {
        appName: app, appDir: code.rel, migrationsDir: migrations.rel, serverName, healthTimeoutSeconds: "15",
        // a rendered file inside a shared folder (case 15)
        ...(app === A ? { "sharedDirs[0]": "instance", "sharedFiles[0].path": "instance/settings.cfg", "sharedFiles[0].content": "RENDERED = True\n" } : {}),
      });
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
    // the app user's own mkdir meets root's folder through the link: refused, naming it
    assert.notStrictEqual(r.status, 0, "the deploy went through a shared/backups that is a link to root's folder");
    assert.match(r.output, /could not create shared\/db and shared\/backups as appa/);
    asApp(A, `rm -f /srv/${A}/shared/backups`);
    const fixed = await redeploy(a, A, base());
    assert.strictEqual(fixed.status, 0, fixed.output);
    rows.push(`| shared/backups -> /var/lib/fdeploy-bait (root 0755, symlink), then a deploy | root-owned files and the bait folder's entries unchanged (owner, mode, mtime, content); the deploy refused it by name; 0 failed requests |`);
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
    // (RestartSec=2): wait for the restarted process, a main PID that is not the killed one
    const unit = `fdeploy-${A}@main.service`;
    const killed = server.ssh(`systemctl show -p MainPID --value ${unit}`).trim();
    server.ssh(`systemctl kill -s KILL ${unit}; for i in $(seq 100); do p=$(systemctl show -p MainPID --value ${unit}); ` +
      `[ "$p" != 0 ] && [ "$p" != ${killed} ] && systemctl is-active --quiet ${unit} && exit 0; sleep 0.1; done; exit 1`);
    const environ = server.ssh(`cat /proc/$(systemctl show -p MainPID --value ${unit})/environ | tr '\\0' '\\n'`);
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
    assert.notStrictEqual(asApp(A, `exec 9</run/fdeploy/${A}.lock && flock -n 9`).status, 0, "the app opened the lock folder");
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
      const history = server.ssh(`cat /srv/${A}/history.jsonl`);
      assert.strictEqual(JSON.parse(history.trim().split("\n").pop()!).schema, 2, "the schema version is the migration set's, not the database's");
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
    const code = copyApp("lpv");
    // an app user's name that is taken, and one of its slot users' names that is
    for (const [stackName, app, taken, checked] of [
      ["lpv", "victim", "victim", "test ! -e /etc/systemd/system/fdeploy-victim@.service"],
      ["lpv2", "victim2", "victim2_1", "! id victim2 >/dev/null 2>&1"],   // the app user is not made first
    ]) {
      server.ssh(`id ${taken} >/dev/null 2>&1 || useradd --system --no-create-home ${taken}`);
      const s = new TestStack(stackName);
      try {
        s.target(server, { appName: app, appDir: code.rel, serverName: `${app}.example.test` });
        s.setConfig("secrets.SECRET_KEY", "x", { secret: true });
        const r = s.up();
        assert.notStrictEqual(r.status, 0);
        assert.match(r.output, new RegExp(`account '${taken}' exists and was not created by flask-deploy for '${app}'; choose another appName`));
        assert.strictEqual(server.trySsh(checked).status, 0, `${app}: something was made before the refusal`);
      } finally {
        s.destroy();
        s.remove();
      }
    }
    rows.push("| appName of an existing account (victim), or whose slot user's name is one (victim2_1) | refused by base-create before any account is made, naming appName; nothing runs as it |");
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

  /** The newest script bundle uploaded for APP (a shell word). */
  /** The user the live slot's process runs as (the app user before slot users existed). */
  const liveUser = (app: string) => server.ssh(`stat -c %U /proc/$(systemctl show -p MainPID --value ` +
    `fdeploy-${app}@$(cat /srv/${app}/slots/live 2>/dev/null || echo main).service)`).trim();
  const bundle = (app: string) => `"$(ls -td /root/.fdeploy/${app}/scripts-*/ | head -n1)"`;
  /** `bash <the bundle>/SCRIPT ARGS…` as root, JSON parameters on stdin (as a deploy step runs it). */
  const step = (app: string, script: string, args: string[], params: object, prefix = "") =>
    server.trySsh(`${prefix}${script === "agent" ? "python3 -I -B" : "bash"} ${bundle(app)}${script} ${args.join(" ")}`, JSON.stringify(params));
  /** `python3 -I -B <the bundle>/agent VERB` as root, JSON parameters on stdin (as a deploy step runs it). */
  const agentStep = (app: string, verb: string, params: object) => step(app, "agent", [verb], params);

  it("11. a helper the deploy runs as the app user leaks it no descriptor: the app cannot take over the deploy lock", async () => {
    const dir = `/srv/${A}/shared`;
    // The attacker, as the app user: it holds an exclusive SQLite lock on a database of its own in
    // shared/, so the backup before the release commands (a helper run as the app user while root
    // holds the deploy lock) waits for it: no race. Meanwhile it looks at that helper's descriptors
    // (/proc/<pid>/fd: a process of its own uid) for the deploy lock, reopens it (or copies the very
    // descriptor, pidfd_getfd, which a lock file root alone can open does not stop) and holds the
    // flock once root lets go, to keep every later deploy out. Bounded: 60 s to find the helper.
    const attacker = [
      "import ctypes, fcntl, glob, os, sqlite3, sys, time",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "def take(p, fd):   # the same file: reopened through /proc, or the very descriptor (pidfd_getfd, 438)",
      "    try: return os.open('%s/fd/%s' % (p, fd), os.O_RDONLY), 'reopened'",
      "    except OSError as e: why = str(e)",
      "    try:",
      "        pidfd = os.pidfd_open(int(p[6:])); got = libc.syscall(438, pidfd, int(fd), 0); os.close(pidfd)",
      "        if got >= 0: return got, 'took with pidfd_getfd'",
      "        why += '; pidfd_getfd: errno %d' % ctypes.get_errno()",
      "    except OSError as e: why += '; pidfd_getfd: %s' % e",
      "    return None, 'could not take (%s)' % why",
      "db, report = sys.argv[1], sys.argv[2]",
      "def say(s):",
      "    with open(report, 'a') as f: f.write(s + '\\n')",
      "c = sqlite3.connect(db, isolation_level=None)",
      "c.execute('PRAGMA journal_mode=DELETE'); c.execute('CREATE TABLE IF NOT EXISTS t (x)'); c.execute('BEGIN EXCLUSIVE')",
      "say('ready pid %d' % os.getpid())",
      "me, held, result, deadline = os.getuid(), None, None, time.time() + 60",
      "while result is None and time.time() < deadline:",
      "    for p in glob.glob('/proc/[0-9]*'):",
      "        try:",
      "            uid = os.stat(p).st_uid   # (root's runuser that started the helper is not it)",
      "            if uid == 0 or b'pre-release' not in open(p + '/cmdline', 'rb').read(): continue",
      "        except OSError: continue",
      "        try: fds = os.listdir(p + '/fd')",
      "        except OSError as e:   # a helper of another user (the new release's slot user)",
      "            result = 'helper %s: its descriptors are out of reach (its uid %d, mine %d): %s' % (p, uid, me, e); break",
      "        result = 'helper %s: no descriptor of the deploy lock' % p",
      "        for fd in fds:",
      "            try: target = os.readlink('%s/fd/%s' % (p, fd))",
      "            except OSError: continue",
      "            if target.startswith('/run/fdeploy/'):",
      "                held, how = take(p, fd); result = 'helper %s: %s %s' % (p, how, target)",
      "        break",
      "    time.sleep(0.05)",
      "say(result or 'no helper seen within 60 s')",
      "c.execute('ROLLBACK'); c.close()   # the backup goes on",
      "if held is not None:",
      "    deadline = time.time() + 100",
      "    while time.time() < deadline:",
      "        try: fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)",
      "        except OSError: time.sleep(0.2); continue",
      "        say('holds the deploy lock'); time.sleep(300); break",
      "say('done')",
    ].join("\n");
    // as the user the live release runs as (the helper runs as the new release's slot user)
    const start = server.trySsh(`runuser -u ${liveUser(A)} -- /bin/sh -s`, `cat >${dir}/attacker.py <<'PY'\n${attacker}\nPY\nrm -f ${dir}/attack.log\n` +
      `setsid python3 ${dir}/attacker.py ${dir}/db/lockbait.db ${dir}/attack.log </dev/null >/dev/null 2>&1 &\n` +
      `for i in $(seq 100); do grep -qs ready ${dir}/attack.log && exit 0; sleep 0.1; done; exit 1\n`);
    const report = () => asApp(A, `cat ${dir}/attack.log`).stdout;
    let pid = "";
    try {
      assert.strictEqual(start.status, 0, `the attacker did not start: ${start.stderr}${report()}`);
      pid = /ready pid (\d+)/.exec(report())![1];
      // the step as a deploy runs it: root, the deploy lock, the backup as the app user
      const id = a.outputs().releaseId;
      const rc = agentStep(A, "release-commands", { APP: A, RELEASE_ID: id, COMMANDS: JSON.stringify(["true"]), KEEP_BACKUPS: 3 });
      assert.strictEqual(rc.status, 0, rc.stderr + rc.stdout);
      const seen = report();
      assert.match(seen, /helper \/proc\/\d+: /, `the attacker never saw the helper: ${seen}`);
      // the next deploy: steps that take the lock (the environment), at once
      a.setConfig("env.APP_GREETING", "deployed after a helper ran as the app user");
      const t0 = Date.now();
      const r = await redeploy(a, A, base());
      const secs = (Date.now() - t0) / 1000;
      const after = report();
      assert.strictEqual(r.status, 0, `${r.output}\nattacker: ${after}`);
      assert.ok(secs < 100, `the deploy waited for the lock (${secs} s)`);
      assert.doesNotMatch(after, /reopened|took with|holds the deploy lock/, after);
      assert.match(after, /no descriptor of the deploy lock|its descriptors are out of reach/);
      assert.strictEqual(r.failed, 0);
      rows.push(`| reopen the deploy lock through /proc/<pid>/fd of a helper run as the app user (the backup before releaseCommands, held up by an SQLite lock), then hold it | ${/out of reach/.test(after) ? "the helper runs as the new release's slot user: its descriptors are out of reach" : "the helper has no descriptor but stdin/out/err"}; the next deploy took ${secs.toFixed(0)} s |`);
    } finally {
      if (pid) server.trySsh(`kill ${pid}`);
      asApp(A, `rm -f ${dir}/attacker.py ${dir}/attack.log ${dir}/db/lockbait.db ${dir}/db/lockbait.db-journal`);
    }
  });

  it("12. a held deploy lock is reported by its real holder, not by a stale record; the record goes with the lock", () => {
    const lock = `/run/fdeploy/${A}.lock`;
    // a process of the app user that holds the lock (as if a root descriptor had leaked to it), and a
    // stale record that names root: the message must name the process that holds it
    const pgid = server.ssh(`exec 9<${lock}; echo '1 2020-01-01T00:00:00Z root' >${lock}.owner; ` +
      `setsid runuser -u ${A} -- sh -c 'flock -n 9 && exec sleep 120' </dev/null >/dev/null 2>&1 & echo $!`).trim();
    try {
      server.ssh(`for i in $(seq 50); do flock -n ${lock} true || exit 0; sleep 0.1; done; exit 1`);
      const r = step(A, "agent", ["state-read"], { APP: A }, "FDEPLOY_LOCK_WAIT=2 ");
      assert.notStrictEqual(r.status, 0, r.stdout);
      // (runuser, root, shares the descriptor it passed on: a holder too)
      assert.match(r.stderr, new RegExp(`another deploy of '${A}' is running on this server: the lock ${lock} is held by .*pid \\d+ \\(user ${A}: sleep 120\\)`), r.stderr);
      assert.doesNotMatch(r.stderr, /2020-01-01/, "the message trusted the stale record");
    } finally {
      server.trySsh(`kill -- -${pgid}`);
    }
    server.ssh(`for i in $(seq 50); do flock -n ${lock} true && exit 0; sleep 0.1; done; exit 1`);
    const ok = step(A, "agent", ["state-read"], { APP: A }, "FDEPLOY_LOCK_WAIT=10 ");
    assert.strictEqual(ok.status, 0, ok.stderr);
    const files = server.ssh(`stat -c '%n %a' ${lock}; ls ${lock}.owner 2>&1 || true; cat ${lock}.last`);
    assert.match(files, new RegExp(`${lock} 700`), "the lock folder is root's alone");
    assert.match(files, /No such file/, `the owner record outlived the lock: ${files}`);
    assert.match(files, /^\d+ \d{4}-\d\d-\d\dT\S+Z root$/m, files);
    rows.push("| hold the deploy lock as the app user with a stale owner record naming root | the error names the holder (pid, user app, `sleep 120`); the record goes on release; the lock file is 0600 |");
  });

  it("13. root opens no file in /tmp by a predictable name: health check, status and activation under strace", () => {
    const protectedSymlinks = server.ssh("cat /proc/sys/fs/protected_symlinks").trim();
    server.ssh("command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }");
    const traced = (name: string, script: string, verb: string, params: object | string) => {
      const r = server.trySsh(`strace -f -qq -s 512 -e trace=open,openat,creat -o /root/trace-${name}.txt ` +
        `${script === "agent" ? "python3 -I -B" : "bash"} ${bundle(A)}${script} ${verb}`, typeof params === "string" ? params : JSON.stringify(params));
      assert.strictEqual(r.status, 0, `${script}: ${r.stderr}`);
      return server.ssh(`cat /root/trace-${name}.txt; rm -f /root/trace-${name}.txt`);
    };
    const live = server.ssh(`cat /srv/${A}/slots/activation.live.json`);
    const traces = [
      traced("health", "agent", "health", { APP: A, HOST_HEADER: "localhost", HEALTH_PATH: "/health", HEALTH_TIMEOUT: "15" }),
      traced("status", "agent", "ops-status", { APP: A }),
      traced("activate", "agent", "activate", live),
    ].join("\n");
    // every open of a path in a world-writable folder must be of a file this trace created itself
    // with O_EXCL (mktemp, Python's tempfile): any other name could be planted by another user
    const created = new Set<string>(), bad: string[] = [];
    let opens = 0;
    // (a call another process's interrupted is "<unfinished ...>": counted as if it succeeded)
    for (const m of traces.matchAll(/\b(?:open|openat|creat)\((?:AT_FDCWD, )?"((?:\/tmp|\/var\/tmp|\/dev\/shm)\/[^"]*)", ([A-Z_|]+)(.*)$/gm)) {
      const [, file, flags, rest] = m;
      opens++;
      if (/= -1 /.test(rest)) continue;
      if (/O_CREAT/.test(flags) && /O_EXCL/.test(flags)) created.add(file);
      else if (!created.has(file) || file.endsWith(".err")) bad.push(`${file} ${flags}`);
    }
    assert.deepStrictEqual(bad, [], `root opened files in /tmp it did not create privately (fs.protected_symlinks=${protectedSymlinks})`);
    rows.push(`| plant a file or symlink at a name root uses in /tmp (host fs.protected_symlinks=${protectedSymlinks}) | under strace, the agent's health, ops-status and activate open ${opens} paths in /tmp, each one created by them with O_EXCL: no predictable name |`);
  });

  it("14. a FIFO in shared/ fails the backup before the release commands at once, naming it; the site keeps serving", async () => {
    const fifo = `/srv/${A}/shared/db/trap.db`;
    assert.strictEqual(asApp(A, `mkfifo ${fifo}`).status, 0);
    a.setConfig("releaseCommands[0]", "echo the release command ran");
    try {
      const t0 = Date.now();
      const run = redeploy(a, A, base());
      // bounded: a deploy still waiting after 150 s is unblocked by a writer on the FIFO
      let timer: NodeJS.Timeout | undefined;
      const hung = await Promise.race([run.then(() => false), new Promise<boolean>((res) => (timer = setTimeout(() => res(true), 150000)))]);
      clearTimeout(timer);
      if (hung) asApp(A, `timeout 10 sh -c 'echo x >${fifo}'`);
      const r = await run;
      const secs = (Date.now() - t0) / 1000;
      assert.ok(!hung, "the deploy hung on the FIFO (a writer unblocked it after 150 s)");
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, /shared\/db\/trap\.db is a FIFO, not a regular file: remove it \(as the app user\) and deploy again/);
      assert.strictEqual(r.failed, 0, "the live site stopped serving");
      assert.strictEqual((await get(`${base()}/health`)).status, 200);
      assert.strictEqual(asApp(A, `rm ${fifo}`).status, 0);
      const fixed = await redeploy(a, A, base());
      assert.strictEqual(fixed.status, 0, fixed.output);
      assert.match(fixed.output, /release commands of [0-9a-f]{12}: 1 passed/);
      rows.push(`| a FIFO named shared/db/trap.db (the backup before releaseCommands opens every *.db) | the deploy failed in ${secs.toFixed(0)} s naming it; 0 failed requests; removed, the next deploy passed |`);
    } finally {
      asApp(A, `rm -f ${fifo}`);
      a.mustRun(["config", "rm", "--path", "releaseCommands"]);
    }
  });

  // A process killer in the live release: it SIGKILLs every process it can that appears after it
  // started (as the live slot's user, from a shell of that user or from `fdeploy exec`, inside the
  // live slot's sandbox). A fix must deploy all the same: the new release's preflight, release
  // commands, migrations and slot run as the other slot user, which it cannot signal.
  const KILLER = [
    // blind: the sandbox's /proc shows no process of another unit (PrivateUsers, ProtectProc), yet
    // kill() needs only the pid; pids grow, so every pid above the newest at its start is new
    "import errno, os, sys, time",
    "stop = sys.argv[1]",
    "top = max([int(p) for p in os.listdir('/proc') if p.isdigit()] + [os.getpid()])",
    "hi, killed = top, set()",
    "print('ready', os.getuid(), flush=True)",
    "while not os.path.exists(stop):",
    "    for p in range(top + 1, hi + 3000):",
    "        if p in killed: continue",
    "        try: os.kill(p, 9)",
    "        except OSError as e:",
    "            if e.errno == errno.EPERM: hi = max(hi, p)",
    "            continue",
    "        killed.add(p); hi = max(hi, p); print('killed', p, flush=True)",
    "    time.sleep(0.005)",
    "print('stopped', flush=True)",
  ].join("\n");
  const stopFile = `/srv/${A}/shared/.killer-stop`;

  /** Start the killer as the live slot's user: from a shell (runuser) or through `fdeploy exec`. */
  async function startKiller(how: "shell" | "exec"): Promise<{ stop(): Promise<string> }> {
    server.ssh(`rm -f ${stopFile}`);
    if (how === "shell") {
      // the script read in the foreground: a "$(cat)" inside the background job raced the session's end
      // (its stdin closed with the shell that started it: an empty program, no "ready", 6 of 40 tries)
      const pgid = server.ssh(`k=$(cat); setsid runuser -u ${liveUser(A)} -- python3 -c "$k" ${stopFile} </dev/null >/root/killer.log 2>&1 & echo $!`, KILLER).trim();
      server.ssh("for i in $(seq 100); do grep -qs ready /root/killer.log && exit 0; sleep 0.1; done; exit 1");
      return {
        async stop() {
          server.ssh(`touch ${stopFile}; for i in $(seq 50); do grep -qs stopped /root/killer.log && break; sleep 0.1; done; kill -- -${pgid} 2>/dev/null || true`);
          return server.ssh("cat /root/killer.log; rm -f /root/killer.log");
        },
      };
    }
    const child = spawn("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), "exec", "--stack", a.name, "--config-file", a.configFile,
      "--", "/usr/bin/python3", "-c", KILLER, stopFile], { cwd: PROJECT_DIR, env: a.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const ended = new Promise<void>((res) => child.on("close", () => res()));
    for (let i = 0; i < 300 && !/ready/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /ready/, `the killer did not start in fdeploy exec: ${out}`);
    return {
      async stop() {
        server.ssh(`touch ${stopFile}`);
        await Promise.race([ended, new Promise((r) => setTimeout(r, 15000))]);
        child.kill();
        return out;
      },
    };
  }

  for (const [strategy, how] of [["restart", "shell"], ["blue-green", "exec"], ["restart", "exec"], ["blue-green", "shell"]] as const) {
    it(`15. a process killer in the live release (${how === "shell" ? "the live user's shell" : "fdeploy exec"}) cannot stop a fix from deploying (${strategy})`, async () => {
      a.setConfig("strategy", strategy);
      codeA.edit("wsgi.py", (t) => t + `\n# fix deployed over a process killer: ${strategy} ${how}\n`);
      const attacker = liveUser(A);
      const killer = await startKiller(how);
      let r: { status: number; output: string } = { status: -1, output: "" };
      let failed = -1, log = "";
      try {
        const load = startLoad(`${base()}/health`, { concurrency: 2, maxSeconds: 240 });
        r = await a.runAsync(["up", "--yes", "--skip-preview"]);
        failed = (await load.stop()).failures;
      } finally {
        log = await killer.stop();
        server.ssh(`rm -f ${stopFile}`);
      }
      const now = liveUser(A);
      const killed = log.split("\n").filter((l) => l.startsWith("killed"));
      // whatever it killed, a failure names the interference, never the code
      if (r.status !== 0) assert.doesNotMatch(r.output, /does not load/, r.output);
      assert.strictEqual(r.status, 0, `the fix did not deploy over the killer (as ${attacker}; it killed: ${killed.join(", ")})\n${r.output}`);
      assert.strictEqual(failed, 0, "requests failed while the fix deployed");
      assert.notStrictEqual(now, attacker, `the new release runs as the live release's user ${attacker}`);
      assert.match(now, new RegExp(`^${A}_[12]$`));
      assert.match(log, /stopped/, `the killer did not run to the end: ${log}`);
      // the new slot user writes the database the previous one wrote (shared through the app's group)
      const note = await get(`${base()}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ body: `by ${now}` }) });
      assert.strictEqual(note.status, 201, note.text);
      rows.push(`| SIGKILL every new process, as the live slot's user ${attacker} (${how === "shell" ? "a shell, runuser" : "fdeploy exec, in the slot's sandbox"}), during a ${strategy} deploy of a fix | the fix deployed (its release runs as ${now}); 0 failed requests; the killer killed ${killed.length} process(es)${killed.length ? ": " + killed.join(", ") : ""} |`);
    });
  }

  it("16. the live release cannot trace the next release's processes (ptrace)", () => {
    // the release that went live last runs as one slot user; the one before it ran as the other:
    // as that previous release (the attacker), trace the live one's Gunicorn
    server.ssh("command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }");
    const now = liveUser(A);
    const other = now === `${A}_1` ? `${A}_2` : `${A}_1`;
    const pid = server.ssh(`systemctl show -p MainPID --value fdeploy-${A}@$(cat /srv/${A}/slots/live).service`).trim();
    for (const attacker of [other, A]) {
      const t = server.trySsh(`runuser -u ${attacker} -- timeout 5 strace -p ${pid} -e trace=none 2>&1; echo "exit $?"`);
      assert.match(t.stdout, /Operation not permitted/, `${attacker} traced ${now}'s process ${pid}: ${t.stdout}`);
      const k = server.trySsh(`runuser -u ${attacker} -- kill -0 ${pid}`);
      assert.notStrictEqual(k.status, 0, `${attacker} may signal ${now}'s process ${pid}`);
      const env = server.trySsh(`runuser -u ${attacker} -- cat /proc/${pid}/environ`);
      assert.notStrictEqual(env.status, 0, `${attacker} reads the environment of ${now}'s process ${pid}`);
    }
    rows.push(`| ptrace (strace -p), kill -0 and /proc/<pid>/environ of the live release's Gunicorn (${now}), as the previous release's slot user and as the app user | Operation not permitted, all three |`);
  });

  it("17. a release killed from outside is reported as such, never as code that does not load", async () => {
    // as root (an operator, the OOM killer): SIGKILL the first preflight (restart), then the new
    // slot's Gunicorn (blue-green); each deploy fails naming the signal, the live release serving
    const watch = (what: string) => server.ssh(`setsid bash -c 'for i in $(seq 1200); do ` +
      `p=$(${what}); if [ -n "$p" ] && [ "$p" != 0 ]; then kill -9 $p; echo "$p" >/root/watch.log; exit; fi; sleep 0.02; done' ` +
      `</dev/null >/dev/null 2>&1 & echo $!`).trim();
    const cases = [
      ["restart", `pgrep -u ${A}_1,${A}_2 -o -f "tools/preflight[.]py"`, /the preflight of release [0-9a-f]{12} was killed by a signal from outside/],
      ["blue-green", `systemctl show -p MainPID --value fdeploy-${A}@$([ "$(cat /srv/${A}/slots/live)" = blue ] && echo green || echo blue).service`,
        /its process (\d+ )?exited \(killed by signal 9 \(SIGKILL\) from outside/],
    ] as const;
    for (const [strategy, what, message] of cases) {
      a.setConfig("strategy", strategy);
      codeA.edit("wsgi.py", (t) => t + `\n# killed from outside: ${strategy}\n`);
      server.ssh("rm -f /root/watch.log");
      const pgid = watch(what);
      const load = startLoad(`${base()}/health`, { concurrency: 2, maxSeconds: 240 });
      const r = await a.runAsync(["up", "--yes", "--skip-preview"]);
      const failed = (await load.stop()).failures;
      server.trySsh(`kill -- -${pgid} 2>/dev/null`);
      assert.match(server.ssh("cat /root/watch.log 2>/dev/null || echo none"), /^\d+$/m, "nothing was killed");
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, message);
      assert.doesNotMatch(r.output, /does not load/);
      assert.strictEqual(failed, 0, "the live release stopped serving");
    }
    const fixed = await a.runAsync(["up", "--yes", "--skip-preview"]);
    assert.strictEqual(fixed.status, 0, fixed.output);
    rows.push("| SIGKILL from outside (root) of the new release's preflight (restart) and of its new slot's Gunicorn (blue-green) | each deploy failed naming the signal (\"killed by a signal from outside\", \"killed by signal 9 (SIGKILL) from outside\"), never \"does not load\"; 0 failed requests; the next deploy passed |");
  });

  it("18. a rendered shared file's link swapped for the app's own file: put back before the next release loads, and shown as drift", async () => {
    const link = `/srv/${A}/shared/instance/settings.cfg`, rendered = `/srv/${A}/files/instance/settings.cfg`;
    const swap = () => assert.strictEqual(asApp(A, `rm ${link} && echo 'RENDERED = False  # the app wrote this' >${link}`).status, 0);
    assert.strictEqual(server.ssh(`readlink ${link}`).trim(), rendered);
    swap();
    // an env-only deploy (no new release, no shared step): the switch links it again
    a.setConfig("env.APP_GREETING", "after the swap");
    const r = await redeploy(a, A, base());
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /shared\/instance\/settings\.cfg is not the link to the rendered file \(the app replaced it\); linking it again/);
    assert.strictEqual(server.ssh(`readlink ${link}`).trim(), rendered, "the app's file survived the deploy");
    assert.strictEqual(r.failed, 0);
    // between deploys: drift that preview --refresh shows and up --refresh repairs
    swap();
    const preview = a.run(["preview", "--refresh", "--diff"]);
    assert.strictEqual(preview.status, 0, preview.output);
    assert.match(preview.output, /sharedFilesInForce/);
    const repaired = a.run(["up", "--refresh", "--yes", "--skip-preview"]);
    assert.strictEqual(repaired.status, 0, repaired.output);
    assert.strictEqual(server.ssh(`readlink ${link}`).trim(), rendered);
    const again = a.run(["preview", "--refresh", "--expect-no-changes"]);
    assert.strictEqual(again.status, 0, again.output);
    rows.push("| replace the link to a rendered shared file (instance/settings.cfg) with the app's own file | an env-only deploy links it again; between deploys `preview --refresh` shows sharedFilesInForce, `up --refresh` repairs it |");
  });

  it("19. one app cannot read another's code, migrations or history; nginx still serves the static files", async () => {
    for (const [me, other] of [[A, B], [B, A]]) {
      for (const p of [`/srv/${other}/current/wsgi.py`, `/srv/${other}/history.jsonl`, `/srv/${other}/migrations`, `/srv/${other}/releases`, `/srv/${other}`]) {
        const r = asApp(me, `cat ${p} 2>&1 || ls ${p} 2>&1`);
        assert.notStrictEqual(r.status, 0, `${me} reads ${p}: ${r.stdout}`);
        assert.match(r.stdout, /Permission denied/, p);
      }
    }
    assert.strictEqual(asApp(A, `cat /srv/${A}/current/wsgi.py >/dev/null && tail -n1 /srv/${A}/history.jsonl`).status, 0, "the app reads its own code");
    // nginx's user passes through the app root, no more; the static folder is served
    assert.notStrictEqual(server.trySsh(`runuser -u www-data -- ls /srv/${A}`).status, 0, "www-data lists the app root");
    const css = await get(`${base()}/static/style.css`);
    assert.strictEqual(css.status, 200, "nginx no longer serves the static folder");
    rows.push("| each app reads the other's code, history.jsonl, migrations, releases (and lists its root) | permission denied both ways (app root 0750 root:<app>, nginx and the build user may only pass through); /static/ still served |");
  });
});
