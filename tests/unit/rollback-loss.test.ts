import * as assert from "assert";
import { describeLoss } from "../../cli/lib/rollback-loss";

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

  it("no down migration: nothing printed", () => {
    assert.deepStrictEqual(describeLoss({ ...base, from: 1, downs: [] }), { lines: [], losesData: false });
  });
});
