// The local migration check that stops `pulumi preview` before anything changes: it runs the
// same migrate.py the server runs (`check`), so both sides agree on what a valid folder is.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { checkMigrations, checkMigrationsCached } from "../../components/migrations";
import { tempDir } from "../tmpdir";

function folder(files: Record<string, string>): string {
  const dir = tempDir("fdeploy-migrations-");
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

describe("migration folder check", () => {
  it("lists the repo's migrations in order with checksums", () => {
    const list = checkMigrations(path.resolve(__dirname, "../../migrations"));
    assert.deepStrictEqual(list.map((m) => m.version), [1, 2]);
    assert.match(list[0].checksum, /^[0-9a-f]{64}$/);
  });

  const bad: Array<[string, Record<string, string>, RegExp]> = [
    ["a gap", { "0001_a.up.sql": "", "0001_a.down.sql": "", "0003_c.up.sql": "", "0003_c.down.sql": "" }, /0003_c/],
    ["a duplicate number", { "0001_a.up.sql": "", "0001_a.down.sql": "", "0001_b.up.sql": "", "0001_b.down.sql": "" }, /0001_b|0001_a/],
    ["a missing down file", { "0001_a.up.sql": "" }, /0001_a/],
    ["a bad name", { "1_create.up.sql": "", "1_create.down.sql": "" }, /1_create/],
  ];
  for (const [what, files, re] of bad) {
    it(`refuses ${what}, naming the file and the key`, () => {
      assert.throws(() => checkMigrations(folder(files)), (e: Error) => {
        assert.match(e.message, /^flask-deploy:migrationsDir: /);
        assert.match(e.message, re);
        assert.match(e.message, /NNNN_name\.up\.sql/);
        return true;
      });
    });
  }

  describe("remembered by content (checkMigrationsCached)", () => {
    const root = () => tempDir("fdeploy-staging-");
    const ok = { "0001_a.up.sql": "create table a(x);", "0001_a.down.sql": "drop table a;" };

    it("checks once, then answers from the staging folder until a .sql file changes", () => {
      const dir = folder(ok), r = root();
      const first = checkMigrationsCached(dir, "st", r);
      assert.deepStrictEqual(first, checkMigrations(dir));
      const [cache] = fs.readdirSync(path.join(r, "st"));
      assert.match(cache, /^migrations-check-[0-9a-f]{16}\.json$/);
      // what is remembered is what is returned (no second check)
      fs.writeFileSync(path.join(r, "st", cache), JSON.stringify([{ version: 1, name: "remembered", checksum: "x" }]));
      assert.strictEqual(checkMigrationsCached(dir, "st", r)[0].name, "remembered");
      // another content (or a file that is not a migration) is checked again
      fs.writeFileSync(path.join(dir, "README"), "not read by the check");
      assert.strictEqual(checkMigrationsCached(dir, "st", r)[0].name, "remembered");
      fs.writeFileSync(path.join(dir, "0001_a.up.sql"), "create table a(y);");
      const again = checkMigrationsCached(dir, "st", r);
      assert.strictEqual(again[0].name, "a");
      assert.deepStrictEqual(again, checkMigrations(dir));
    });

    it("never remembers an invalid folder: refused every time", () => {
      const dir = folder({ "0001_a.up.sql": "" }), r = root();
      for (let i = 0; i < 2; i++) assert.throws(() => checkMigrationsCached(dir, "st", r), /flask-deploy:migrationsDir: .*0001_a/s);
      assert.ok(!fs.existsSync(path.join(r, "st")) || fs.readdirSync(path.join(r, "st")).length === 0);
      assert.throws(() => checkMigrationsCached(path.join(dir, "nope"), "st", r), /flask-deploy:migrationsDir: /);
    });
  });
});
