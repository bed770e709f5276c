import * as assert from "assert";
import { describeLoss } from "../../cli/lib/rollback-loss";
import { beforeChangeRecord } from "../../components/config/before-change";

describe("fdeploy rollback: what its down migrations drop", () => {
  const base = { from: 3, to: 1, backupDir: "/srv/flaskapp/shared/backups" };

  it("names each table and column with its rows, and asks when data goes", () => {
    const { lines, losesData } = describeLoss({ ...base, downs: [
      { version: 3, name: "add_tags", lost: [{ table: "tags", rows: 2 }] },
      { version: 2, name: "add_pinned", lost: [{ table: "notes", column: "pinned", values: 3, nonDefault: 1 }] },
    ] });
    assert.ok(losesData);
    assert.deepStrictEqual(lines.slice(1, 3), [
      "  0003_add_tags: drops table tags (2 rows)",
      "  0002_add_pinned: drops column notes.pinned (1 row holds a value other than its default)",
    ]);
    assert.match(lines[3], /backs the database up into \/srv\/flaskapp\/shared\/backups\/ \(the newest app-<time>-v3\.sqlite3 there\)/);
  });

  it("an empty table or a column of defaults loses nothing: listed, not asked", () => {
    const { lines, losesData } = describeLoss({ ...base, downs: [
      { version: 3, name: "add_tags", lost: [{ table: "tags", rows: 0 }] },
      { version: 2, name: "add_pinned", lost: [{ table: "notes", column: "pinned", values: 3, nonDefault: 0 }] },
    ] });
    assert.ok(!losesData);
    assert.strictEqual(lines.length, 4);
  });

  it("with backup.beforeChange replica: names the replica's restore point and the restore command, the folder only as the fallback", () => {
    const downs = [{ version: 3, name: "add_tags", lost: [{ table: "tags", rows: 2 }] }];
    const { lines, losesData } = describeLoss({ ...base, downs }, { replica: true, restore: "--stack prod --app shop" });
    assert.ok(losesData);
    assert.strictEqual(lines.length, 3);
    assert.match(lines[2], /^Before them the deploy takes the replica's restore point as their undo \(backup\.beforeChange: replica\)/);
    assert.match(lines[2], /to go back to it: fdeploy backup restore --stack prod --app shop --txid <txid>\./);
    assert.match(lines[2], /When replication is not healthy then, migrate\.py backs the database up into \/srv\/flaskapp\/shared\/backups\/ .* instead/);
    // copy (the default) and PostgreSQL (its pg_dump is the undo): the backup folder, as before
    for (const [loss, undo] of [[{ ...base, downs }, { replica: false, restore: "--stack prod" }], [{ ...base, downs, backupName: "app-<time>-v3.pgdump" },
      { replica: true, restore: "--stack prod" }]] as const) {
      const l = describeLoss(loss, undo).lines[2];
      assert.match(l, /^Before them migrate\.py backs the database up into \/srv\/flaskapp\/shared\/backups\/ \(the newest /);
      assert.doesNotMatch(l, /txid|replica/);
    }
  });

  it("the app's fdeploy record carries beforeChange only with replica (every other stack's record unchanged)", () => {
    assert.deepStrictEqual(beforeChangeRecord({ beforeChange: "replica" }), { beforeChange: "replica" });
    for (const b of [undefined, {}, { beforeChange: "copy" }]) assert.deepStrictEqual(beforeChangeRecord(b), {});
  });

  it("no down migration: nothing printed", () => {
    assert.deepStrictEqual(describeLoss({ ...base, from: 1, downs: [] }), { lines: [], losesData: false });
  });
});
