// Preview with a release pinned (issue 34): one warning naming the down migrations the up runs and
// what their SQL drops, from the stack's last outputs and the local migrations folder.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { rollbackWarning, warnRollbackLoss } from "../../components/rollback-preview";
import { tempDir } from "../tmpdir";

const A = "aaaaaaaaaaaa", B = "bbbbbbbbbbbb", C = "cccccccccccc";
const entry = (releaseId: string, schemaVersion: string) => ({ time: "2026-12-06T00:00:00Z", releaseId, status: "live" as const, schemaVersion });

/** A migrations folder: 0001 creates notes, 0002 adds a column, 0003 a table, 0004 is not deployed yet. */
function folder(): string {
  const d = tempDir("fdeploy-downs-");
  const w = (n: string, sql: string) => fs.writeFileSync(path.join(d, n), sql);
  w("0001_create_notes.up.sql", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);");
  w("0001_create_notes.down.sql", "DROP TABLE notes;");
  w("0002_add_pinned.up.sql", "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;");
  w("0002_add_pinned.down.sql", "ALTER TABLE notes DROP COLUMN pinned;");
  w("0003_add_tags.up.sql", "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);");
  w("0003_add_tags.down.sql", "DROP TABLE tags;");
  w("0004_add_colour.up.sql", "ALTER TABLE tags ADD COLUMN colour TEXT;");
  w("0004_add_colour.down.sql", "ALTER TABLE tags DROP COLUMN colour;");
  return d;
}

describe("preview with a pinned release: the down migrations it runs (issue 34)", () => {
  const dir = folder();
  const last = { releaseId: C, schemaVersion: 3, releaseHistory: [entry(A, "1"), entry(B, "2"), entry(C, "3")] };

  it("names each down migration of the deployed schema, newest first, what it drops, and the backup", () => {
    const said = rollbackWarning(A, last, dir, "/srv/shop")!;
    console.log(`      ${said.replace(/\n/g, "\n      ")}`);
    const [first, second] = said.split("\n");
    assert.strictEqual(first, `flask-deploy:release ${A}: this up runs down migrations from schema version 3 to 1, newest first: ` +
      "0003_add_tags drops table tags; 0002_add_pinned drops column notes.pinned");
    assert.match(second, /backs the database up first into \/srv\/shop\/shared\/backups\/ \(app-<time>-v3\.sqlite3\).*fdeploy rollback --to a{12}/);
    assert.doesNotMatch(said, /0004|0001/, "a migration never deployed, or below the pinned schema, does not run");
  });

  it("says nothing when no down migration runs: pinned already, same schema, first deploy", () => {
    assert.strictEqual(rollbackWarning(C, last, dir, "/srv/shop"), undefined);
    assert.strictEqual(rollbackWarning(B, { ...last, schemaVersion: 2, releaseId: A }, dir, "/srv/shop"), undefined);
    assert.strictEqual(rollbackWarning(A, {}, dir, "/srv/shop"), undefined);
  });

  it("a release missing from the releaseHistory output: says the preview cannot tell, and the command that does", () => {
    assert.match(rollbackWarning("dddddddddddd", last, dir, "/srv/shop")!, /^flask-deploy:release d{12}: its schema version is not in the stack's releaseHistory output.*fdeploy rollback --to d{12}/);
  });

  it("warns at preview only, once, from the stack's own last outputs", async () => {
    const said: string[] = [];
    const read = async (keys: string[]) => { assert.deepStrictEqual(keys, ["releaseId", "schemaVersion", "releaseHistory"]); return last; };
    const dry = pulumi.runtime.isDryRun;
    try {
      (pulumi.runtime as any).isDryRun = () => false;
      await warnRollbackLoss(A, dir, "/srv/shop", read, (m) => { said.push(m); });
      assert.strictEqual(said.length, 0, "an up without preview reads nothing");
      (pulumi.runtime as any).isDryRun = () => true;
      await warnRollbackLoss(undefined, dir, "/srv/shop", read, (m) => { said.push(m); });
      await warnRollbackLoss(A, dir, "/srv/shop", read, (m) => { said.push(m); });
      assert.strictEqual(said.length, 1);
      assert.match(said[0], /0003_add_tags drops table tags/);
    } finally {
      (pulumi.runtime as any).isDryRun = dry;
    }
  });
});
