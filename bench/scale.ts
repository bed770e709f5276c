// npm run bench:scale [-- --big-mb 200 --db-mb 2048 --releases 50 --deploys 20 --budget-mb N]
// How a deploy's cost grows with the app, the database and the history (issue #29); not part of
// npm test. One test server of its own ("rp-scale", 10.213.0.200; FDEPLOY_SCALE_SERVER=NAME:OCTET),
// one stack, every case measured once in this one run (each row's two sides minutes apart, under
// the same load), and bench/results/scale.md written with the commit, the dates, the load average
// at start and end and the other test servers up meanwhile (they share the CPUs).
//
// Cases (the table in the issue):
//   code        one line of app code changed -> `pulumi up`: app with 1 MB vs BIG MB of incompressible static files
//   ship        the up that first ships the BIG MB app (a new release, uploaded whole) vs `rsync -a` of the same
//               folder over ssh into an empty folder (the floor)
//   migration   an up with one migration, the database at 10 MB vs DB MB, against the floor: `sqlite3 .backup`
//               of the DB MB database alone (goal: big <= small + 1.5 x floor)
//   releases    no-op up with RELEASES kept releases vs 5 (the extra ones hard-link copies of the live
//               release, with history lines: RELEASES deploys would take longer than the rest together)
//   no-op       no-op up, app with BIG MB vs 1 MB
//   budget      disk used by the kept pre-migration backups after DEPLOYS migrating deploys of the DB MB
//               database vs the budget (flask-deploy:keepBackupsBytes = BUDGET MB, default 2.5 x DB)
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { copyApp, copyMigrations } from "../tests/e2e/app-copy";
import { TestStack } from "../tests/e2e/pulumi";
import { startServer, stopServer, TestServer } from "../tests/servers";
import { commitOf, provenanceEnd, provenanceLine, provenanceStart } from "../tests/servers/provenance";

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  return v;
};
const BIG_MB = arg("big-mb", 200), DB_MB = arg("db-mb", 2048), RELEASES = arg("releases", 50), DEPLOYS = arg("deploys", 20);
const BUDGET_MB = arg("budget-mb", Math.round(DB_MB * 2.5));
const SMALL_MB = 1, DB_SMALL_MB = 10;
const m = /^([a-z][a-z0-9-]*):(\d{1,3})$/.exec(process.env.FDEPLOY_SCALE_SERVER ?? "rp-scale:200");
if (!m) throw new Error("FDEPLOY_SCALE_SERVER: expected NAME:OCTET");
const NAME = m[1], OCTET = Number(m[2]);
const RESULTS = path.join(__dirname, "results");
const DB = "/srv/flaskapp/shared/db/app.sqlite3";
const log = (s: string) => console.log(`[scale ${new Date().toISOString().slice(11, 19)}] ${s}`);

/** Files of random bytes (incompressible) under DIR, MB in total, 4 MB each at most. */
function randomFiles(dir: string, mb: number): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0, left = mb; left > 0; i++, left -= 4) {
    fs.writeFileSync(path.join(dir, `blob-${i}.bin`), crypto.randomBytes(Math.min(4, left) * 1024 * 1024));
  }
}

/** An up, timed: seconds and the output (a failed up stops the bench). */
function up(stack: TestStack, what: string): { s: number; out: string } {
  const t0 = Date.now();
  const r = stack.up();
  const s = (Date.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${what}: pulumi up failed\n${r.output.slice(-3000)}`);
  log(`${what}: ${s.toFixed(1)} s`);
  return { s, out: r.output };
}

/** What an up's release upload held (components/release.ts logs it): "N of M files, B bytes", or that it logged none. */
function uploadLine(out: string): string {
  const m = /its upload holds (\d+) of (\d+) files, (\d+) bytes/.exec(out);
  return m ? `${m[1]} of ${m[2]} files, ${Number(m[3]).toLocaleString("en")} bytes` : "no upload line (a whole upload)";
}

/** A command on the server timed there (no ssh setup in it): seconds. */
function onServer(server: TestServer, cmd: string): number {
  const out = server.ssh(`t0=$(date +%s.%N); ${cmd} >/dev/null; t1=$(date +%s.%N); echo "$t0 $t1"`).trim().split("\n").pop()!.split(" ");
  return Number(out[1]) - Number(out[0]);
}

/** The app's database grown to MB with random blobs, as the app user (its WAL and lock files stay the app's). */
function growDb(server: TestServer, mb: number): void {
  const have = Number(server.ssh(`stat -c %s ${DB}`).trim()) / 1048576;
  const add = Math.max(0, Math.round(mb - have));
  if (!add) return;
  server.ssh(`runuser -u flaskapp -- sqlite3 ${DB} "CREATE TABLE IF NOT EXISTS scale_blobs (id INTEGER PRIMARY KEY, b BLOB); ` +
    `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${add}) INSERT INTO scale_blobs (b) SELECT randomblob(1048576) FROM c; ` +
    `PRAGMA wal_checkpoint(TRUNCATE);"`);
}

let migration = 2;
function addMigration(dir: string): void {
  migration++;
  const name = `${String(migration).padStart(4, "0")}_scale_${migration}`;
  fs.writeFileSync(path.join(dir, `${name}.up.sql`), `CREATE TABLE scale_${migration} (id INTEGER PRIMARY KEY);\n`);
  fs.writeFileSync(path.join(dir, `${name}.down.sql`), `DROP TABLE scale_${migration};\n`);
}

const backupLine = (out: string) => /backup: app\.sqlite3, [^\n]*/.exec(out)?.[0].replace(/ -> .*/, "") ?? "(no backup line)";
const mb = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MB`;

interface Row { kind: string; small: string; big: string; ratio: string; goal: string; met: boolean | undefined; note?: string }

async function main(): Promise<void> {
  const own = (n: string) => n === NAME;
  const prov = provenanceStart(own);
  const commit = commitOf();
  const t00 = Date.now();
  log(`${NAME} (10.213.0.${OCTET}); big app ${BIG_MB} MB, database ${DB_MB} MB, ${RELEASES} releases, ${DEPLOYS} migrating deploys, budget ${BUDGET_MB} MB`);
  const server = startServer(NAME, OCTET);
  const stack = new TestStack(NAME);
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    const app = copyApp(NAME);
    const migrations = copyMigrations(NAME);
    randomFiles(path.join(app.dir, "static", "small"), SMALL_MB);
    stack.target(server, { appDir: app.rel, migrationsDir: migrations.rel, keepBackupsBytes: String(BUDGET_MB * 1048576) });
    stack.setConfig("secrets.SECRET_KEY", "scale-bench-secret", { secret: true });
    up(stack, "first deploy, 1 MB app (not timed)");
    let n = 0;
    const change = () => app.edit("wsgi.py", (s) => s.replace(/\n# scale \d+\n$|$/, `\n# scale ${++n}\n`));

    // small app: one-line change, no-op
    change();
    const codeSmall = up(stack, "one-line change, 1 MB app");
    const noopSmall = up(stack, "no-op up, 1 MB app");
    // the big app: shipped, then the same one-line change and no-op
    randomFiles(path.join(app.dir, "static", "big"), BIG_MB);
    const ship = up(stack, `the up that ships the ${BIG_MB} MB app`);
    const sshOpts = `ssh -i ${server.keyPath} -o UserKnownHostsFile=${server.knownHostsPath} -o StrictHostKeyChecking=yes -o BatchMode=yes`;
    // the floor needs rsync on the server too (the test image has none): installed untimed; where
    // that fails, tar | ssh (the same bytes, one stream) stands in, and the row says so
    if (server.trySsh("command -v rsync").status !== 0) server.trySsh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync >/dev/null 2>&1");
    const viaRsync = server.trySsh("command -v rsync").status === 0;
    const floorName = viaRsync ? "`rsync -a`" : "`tar | ssh` (no rsync on the server)";
    server.ssh("rm -rf /root/rsync-floor && mkdir /root/rsync-floor");
    const r0 = Date.now();
    const rs = viaRsync ? spawnSync("rsync", ["-a", "-e", sshOpts, `${app.dir}/`, `root@${server.host}:/root/rsync-floor/`], { encoding: "utf8" })
      : spawnSync("bash", ["-c", `tar -C "$1" -cf - . | ${sshOpts} root@${server.host} 'tar -x -C /root/rsync-floor'`, "floor", app.dir], { encoding: "utf8" });
    if (rs.status !== 0) throw new Error(`floor: ${rs.stderr}`);
    const rsync = (Date.now() - r0) / 1000;
    log(`${floorName} of the ${BIG_MB} MB app over ssh: ${rsync.toFixed(1)} s`);
    server.ssh("rm -rf /root/rsync-floor");
    change();
    const codeBig = up(stack, `one-line change, ${BIG_MB} MB app`);
    const noopBig = up(stack, `no-op up, ${BIG_MB} MB app`);
    rows.push({ kind: `one-line code change, app with ${SMALL_MB} MB vs ${BIG_MB} MB of incompressible static files`, small: `${codeSmall.s.toFixed(1)} s`,
      big: `${codeBig.s.toFixed(1)} s`, ratio: `${(codeBig.s / codeSmall.s).toFixed(2)}×`, goal: "big ≤ 1.2× small", met: codeBig.s <= 1.2 * codeSmall.s,
      note: `what the ${BIG_MB} MB app's up sent: ${uploadLine(codeBig.out)}; the ${SMALL_MB} MB app's: ${uploadLine(codeSmall.out)}` });
    rows.push({ kind: `the up that first ships the ${BIG_MB} MB app vs ${floorName} of the same folder over ssh (the floor)`, small: `${rsync.toFixed(1)} s (floor)`,
      big: `${ship.s.toFixed(1)} s`, ratio: `${(ship.s / rsync).toFixed(2)}×`, goal: "≤ 1.5×", met: ship.s <= 1.5 * rsync,
      note: "a new release of a deployed app (its venv reused), not the server's first deploy (base system and venv build are not part of it)" });

    // kept releases: 5 (keepReleases' default, after these deploys) vs RELEASES
    const kept = () => Number(server.ssh("ls -1 /srv/flaskapp/releases | grep -cE '^[0-9a-f]{12}$' || true").trim());
    const noop5 = up(stack, `no-op up, ${kept()} kept releases`);
    const k5 = kept();
    stack.setConfig("keepReleases", String(RELEASES));
    change();
    up(stack, `keepReleases ${RELEASES} (not timed)`);
    server.ssh(`set -e; cd /srv/flaskapp/releases; live=$(basename "$(readlink -f /srv/flaskapp/current)"); have=$(ls -1 | grep -cE '^[0-9a-f]{12}$'); ` +
      `for i in $(seq $((have + 1)) ${RELEASES}); do id=$(printf '%012x' $((0xbe0000000000 + i))); cp -al "$live" "$id"; ` +
      `printf '{"time": "2026-01-01T00:00:00Z", "release": "%s", "status": "live", "strategy": "restart", "schema": 2}\\n' "$id" >> /srv/flaskapp/history.jsonl; done`);
    const kMany = kept();
    const noopMany = up(stack, `no-op up, ${kMany} kept releases`);
    rows.push({ kind: `no-op up with ${kMany} kept releases vs ${k5}`, small: `${noop5.s.toFixed(1)} s`, big: `${noopMany.s.toFixed(1)} s`,
      ratio: `${(noopMany.s / noop5.s).toFixed(2)}×`, goal: "≤ 1.1×", met: noopMany.s <= 1.1 * noop5.s,
      note: `${kMany - k5} of them hard-link copies of the live release with history lines (${RELEASES} real deploys would outlast the rest of the bench)` });
    rows.push({ kind: `no-op up, app with ${BIG_MB} MB vs ${SMALL_MB} MB`, small: `${noopSmall.s.toFixed(1)} s`, big: `${noopBig.s.toFixed(1)} s`,
      ratio: `${(noopBig.s / noopSmall.s).toFixed(2)}×`, goal: "≤ 1.1×", met: noopBig.s <= 1.1 * noopSmall.s });

    // a migration: 10 MB vs DB_MB, the floor (.backup of DB_MB alone)
    growDb(server, DB_SMALL_MB);
    addMigration(migrations.dir);
    const migSmall = up(stack, `a migration, database ${DB_SMALL_MB} MB`);
    const g0 = Date.now();
    growDb(server, DB_MB);
    log(`database grown to ${mb(Number(server.ssh(`stat -c %s ${DB}`).trim()))} (${((Date.now() - g0) / 1000).toFixed(0)} s, not timed)`);
    addMigration(migrations.dir);
    const migBig = up(stack, `a migration, database ${DB_MB} MB`);
    const floor = onServer(server, `runuser -u flaskapp -- sqlite3 ${DB} ".backup /srv/flaskapp/shared/db/.scale-floor.sqlite3"`);
    server.ssh("rm -f /srv/flaskapp/shared/db/.scale-floor.sqlite3");
    log(`floor: sqlite3 .backup of the ${DB_MB} MB database: ${floor.toFixed(1)} s`);
    rows.push({ kind: `deploy with a migration, database ${DB_SMALL_MB} MB vs ${DB_MB} MB (floor: \`sqlite3 .backup\` of ${DB_MB} MB alone: ${floor.toFixed(1)} s)`,
      small: `${migSmall.s.toFixed(1)} s`, big: `${migBig.s.toFixed(1)} s`, ratio: `${(migBig.s / migSmall.s).toFixed(2)}× (big − small = ${((migBig.s - migSmall.s) / floor).toFixed(2)}× the floor)`,
      goal: "big ≤ small + 1.5× the floor", met: migBig.s <= migSmall.s + 1.5 * floor,
      note: `the deploys' own lines: "${backupLine(migSmall.out)}", "${backupLine(migBig.out)}"` });

    // the kept backups after DEPLOYS migrating deploys of the big database, against the budget
    const times: number[] = [migBig.s];
    for (let i = 2; i <= DEPLOYS; i++) {
      addMigration(migrations.dir);
      times.push(up(stack, `migrating deploy ${i}/${DEPLOYS}, database ${DB_MB} MB`).s);
    }
    const used = Number(server.ssh("du -sb /srv/flaskapp/shared/backups | cut -f1").trim());
    const copies = Number(server.ssh("ls -1 /srv/flaskapp/shared/backups | grep -c '^app-' || true").trim());
    rows.push({ kind: `disk used by kept backups after ${DEPLOYS} migrating deploys of the ${DB_MB} MB database`, small: `budget ${mb(BUDGET_MB * 1048576)}`,
      big: `${mb(used)} (${copies} copies)`, ratio: `${(used / (BUDGET_MB * 1048576)).toFixed(2)}× the budget`, goal: "within the budget", met: used <= BUDGET_MB * 1048576,
      note: `each of those deploys: ${Math.min(...times).toFixed(1)}–${Math.max(...times).toFixed(1)} s` });
  } catch (e) {
    notes.push(`**The run stopped early:** ${String((e as Error).message ?? e).split("\n")[0]}`);
    console.error(e);
  } finally {
    stack.remove();
    stopServer(NAME);
  }
  provenanceEnd(prov, own);
  const lines = [
    "# Cost as it grows (`npm run bench:scale`)", "",
    "Written by `npm run bench:scale` (bench/scale.ts): every row measured once in one run, its two sides minutes apart on",
    `one test server (${NAME}, a systemd-nspawn machine on this host: no real network, the upload is a local copy).`, "",
    `- **the run**: commit \`${commit.slice(0, 12)}${commit.endsWith("+dirty") ? "` + uncommitted edits" : "`"}; ${provenanceLine(prov)}`,
    `- **sizes**: app ${SMALL_MB} MB vs ${BIG_MB} MB of random static files; database ${DB_SMALL_MB} MB vs ${DB_MB} MB; ${RELEASES} kept releases; ` +
      `${DEPLOYS} migrating deploys; keepBackupsBytes ${BUDGET_MB} MB; the whole run ${((Date.now() - t00) / 60000).toFixed(1)} min`,
    "- **reading it**: one run, each side timed once, on a 2-core machine shared with other engineers' tests: a swing of the load " +
      "between the two sides moves a ratio by more than many goals allow (a ratio below 1 is such a swing); the lead re-runs it on a quiet machine",
    ...notes.map((x) => `- ${x}`), "",
    "| case | small | big | ratio | goal | met |", "|---|---:|---:|---:|---|---|",
    ...rows.map((r) => `| ${r.kind} | ${r.small} | ${r.big} | ${r.ratio} | ${r.goal} | ${r.met === undefined ? "—" : r.met ? "yes" : "**no**"} |`), "",
    ...rows.filter((r) => r.note).map((r) => `- ${r.kind.split(",")[0]}: ${r.note}`), "",
  ];
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, "scale.md"), lines.join("\n"));
  log(`bench/results/scale.md written\n${lines.join("\n")}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
