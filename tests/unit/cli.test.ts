// fdeploy's command line (cli/main.ts): every command has --help and --stack; bad arguments are
// refused before any stack or server is touched; tables line up.
import * as assert from "assert";
import { main } from "../../cli/main";
import { bytes, table } from "../../cli/lib/print";

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "", err = "";
  const w = process.stdout.write, e = process.stderr.write;
  process.stdout.write = ((s: string) => ((out += s), true)) as any;
  process.stderr.write = ((s: string) => ((err += s), true)) as any;
  try {
    const code = await main(["node", "fdeploy", ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = w;
    process.stderr.write = e;
    process.exitCode = undefined;
  }
}

describe("fdeploy command line", () => {
  for (const c of ["status", "releases", "logs", "exec", "console", "rollback", "purge", "maintenance", "lock status", "lock release", "jobs", "jobs run"]) {
    it(`${c} --help names --stack`, async () => {
      const r = await run(...c.split(" "), "--help");
      assert.strictEqual(r.code, 0);
      assert.match(r.out, /-s, --stack <name>/);
    });
  }
  it("refuses bad arguments before reading any stack", async () => {
    for (const [args, msg] of [
      [["rollback", "--stack", "x", "--to", "HEAD"], /--to: expected a release id/],
      [["maintenance", "maybe", "--stack", "x"], /expected on or off/],
      [["logs", "--stack", "x", "-n", "ten"], /--lines: expected a number/],
      [["logs", "--stack", "x", "--since", "1h; rm -rf /"], /--since: expected/],
      [["jobs", "run", "../etc", "--stack", "x"], /is not a job name/],
    ] as [string[], RegExp][]) {
      const r = await run(...args);
      assert.strictEqual(r.code, 2, args.join(" "));
      assert.match(r.err, msg);
    }
    assert.notStrictEqual((await run("nonsense")).code, 0);
  });
  it("prints aligned tables and sizes", () => {
    assert.strictEqual(table(["A", "BB"], [["xxx", "y"]]), "A    BB\nxxx  y\n");
    assert.strictEqual(bytes(1536), "1.5 KB");
  });
});
