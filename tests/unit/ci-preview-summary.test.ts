// fdeploy preview-summary (cli/commands/preview-summary.ts): what a CI job summary says of a preview.
// The fixtures in ci-preview/ are real `pulumi preview --json` outputs of the sample app on a test
// server (stack ci1; stackTrace/sourcePosition fields stripped): a first deploy; no change; a code
// change with a new migration, a new env value and strategy blue-green; a rollback pinned to the first
// release.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { appChanges, newMigrations, Preview, previewSummary } from "../../cli/commands/preview-summary";
import { tempDir } from "../tmpdir";
import { runFdeploy } from "./helpers";

const FIXTURES = path.join(__dirname, "ci-preview");
const load = (name: string): Preview => JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), "utf8"));
const run = (...args: string[]) => runFdeploy(args);
const FIRST = "496d998bf8a4", SECOND = "c2a14558f180";


describe("fdeploy preview-summary: a preview as a CI job summary", function () {
  this.timeout(60000);   // the first main() loads every command (ts-node)
  it("a first deploy: the new release, every migration, the dev default strategy", () => {
    const [a] = appChanges(load("first-deploy"), "ci1");
    assert.deepStrictEqual(a.release, { id: FIRST, before: undefined, pinned: false });
    assert.deepStrictEqual(a.migrations, ["0001_create_notes", "0002_add_notes_created_at"]);
    assert.strictEqual(a.strategy, "restart");
    assert.ok(a.changes.includes("release (create)") && a.changes.includes("nginx (create)"), a.changes.join());
    assert.match(previewSummary(load("first-deploy"), "ci1"), /\| release \| `496d998bf8a4` \(new: first deploy\) \|/);
  });

  it("no change: the live release unchanged, nothing to migrate", () => {
    const md = previewSummary(load("no-change"), "ci1");
    assert.match(md, /no changes, 26 unchanged/);
    assert.match(md, /\| release \| `496d998bf8a4` \(unchanged\) \|/);
    assert.match(md, /\| changes \| none \|/);
    assert.match(md, /\| migrations to apply \| none \|/);
    assert.strictEqual(previewSummary(load("no-change"), "acme/flask-deploy/ci1"), md, "a fully qualified stack name");
  });

  it("a code change with a migration and a setting: the new release, only the new migration, the strategy set", () => {
    const [a] = appChanges(load("code-migration-strategy"), "ci1");
    assert.deepStrictEqual(a.release, { id: SECOND, before: FIRST, pinned: false });
    assert.deepStrictEqual(a.migrations, ["0003_add_notes_pinned"]);
    assert.strictEqual(a.strategy, "blue-green");
    assert.deepStrictEqual(a.changes.filter((c) => /^(release|env|migrations)/.test(c)).sort(),
      ["env (update)", "migrations (replace)", "release (replace)"]);
    const md = previewSummary(load("code-migration-strategy"), "ci1");
    assert.match(md, /4 to replace, 5 to update, 17 unchanged/);
    assert.match(md, /`c2a14558f180` \(new; replaces `496d998bf8a4`\)/);
    assert.ok(md.split("\n").length < 15, md);
  });

  it("a rollback: the pinned release, the down migration, the preview's warnings", () => {
    const md = previewSummary(load("rollback"), "ci1");
    assert.match(md, /\| release \| rollback to `496d998bf8a4` \(from `c2a14558f180`\) \|/);
    assert.match(md, /\| migrations to apply \| `down to the schema of release 496d998bf8a4` \|/);
    assert.match(md, /^- flask-deploy:release 496d998bf8a4: this up runs down migrations .*drops column notes.pinned$/m);
  });

  it("strategy unset: blue-green on a production stack, restart elsewhere (as the program decides)", () => {
    assert.strictEqual(appChanges(load("no-change"), "prod")[0].strategy, "blue-green");
    assert.strictEqual(appChanges(load("no-change"), "staging")[0].strategy, "restart");
  });

  it("an edited migration is named as changed, not as new", () => {
    assert.deepStrictEqual(newMigrations(["0001_a 111", "0002_b 222"], ["0001_a 111", "0002_b 333", "0003_c 444"]),
      ["0002_b (changed)", "0003_c"]);
  });

  it("a program with two FlaskApps: one table each", () => {
    const p = load("code-migration-strategy");
    const rename = (v: any): any => JSON.parse(JSON.stringify(v).replace(/::app(-[a-z-]+)?"/g, '::api$1"'));
    p.steps = [...p.steps!, ...p.steps!.filter((s) => s.urn.includes("FlaskApp$")).map(rename)];
    const apps = appChanges(p, "ci1");
    assert.deepStrictEqual(apps.map((a) => [a.app, a.release?.id, a.migrations]).sort(),
      [["api", SECOND, ["0003_add_notes_pinned"]], ["app", SECOND, ["0003_add_notes_pinned"]]]);
    assert.match(previewSummary(p), /#### app `api`[^]*#### app `app`|#### app `app`[^]*#### app `api`/);
  });

  it("the command: reads --preview, refuses another stack's preview or a file that is not one", async () => {
    const ok = await run("preview-summary", "--stack", "ci1", "--preview", path.join(FIXTURES, "code-migration-strategy.json"));
    assert.strictEqual(ok.code, 0, ok.err);
    assert.match(ok.out, /^### flask-deploy preview of stack `ci1`/);
    assert.strictEqual(ok.err, "", "without --steps: nothing on stderr");
    // --steps: the log's list of what changes (the CI job's one preview is --json), the summary unchanged on stdout
    const steps = await run("preview-summary", "--stack", "ci1", "--steps", "--preview", path.join(FIXTURES, "code-migration-strategy.json"));
    assert.strictEqual(steps.code, 0, steps.err);
    assert.strictEqual(steps.out, ok.out);
    const lines = steps.err.trim().split("\n");
    assert.strictEqual(lines.length, 9, steps.err);   // 4 to replace, 5 to update
    assert.ok(lines.includes("+- replace command:remote:Command app-release-install (stdin, triggers)"), steps.err);
    assert.ok(lines.includes("~ update command:remote:Command app-env-file (stdin)"), steps.err);
    const none = await run("preview-summary", "--stack", "ci1", "--steps", "--preview", path.join(FIXTURES, "no-change.json"));
    assert.strictEqual(none.err, "no resource changes\n");
    const other = await run("preview-summary", "--stack", "prod", "--preview", path.join(FIXTURES, "no-change.json"));
    assert.strictEqual(other.code, 2);
    assert.match(other.err, /--preview: a preview of stack ci1, not prod/);
    const bad = path.join(tempDir("ci-summary-"), "bad.json");
    fs.writeFileSync(bad, "error: preview failed\n");
    const r = await run("preview-summary", "--stack", "ci1", "--preview", bad);
    assert.strictEqual(r.code, 2);
    assert.match(r.err, /not the output of pulumi preview --json/);
  });
});
