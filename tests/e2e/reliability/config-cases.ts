// 1. Bad configuration: a handful of the refusals tests/unit/config.test.ts covers one by one, now
// through the real CLI against a server that already runs a deployment. `pulumi preview` and
// `pulumi up` must both fail with a message naming the key and the expected form, and nothing on
// the server may change (a fingerprint of /srv, /etc/nginx, /etc/systemd/system, … and the count
// of SSH logins, taken without SSH).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR, TestStack } from "../pulumi";
import { changed, Ctx, diffLines, line, notes, rcase, snapshot, tail } from "./harness";

const CATEGORY = "bad configuration";

interface BadCase {
  name: string;
  /** The message that must appear in both outputs (key + expected form). */
  message: RegExp;
  /** Lines to quote in the results table (default: the line matching `message`). */
  show?: RegExp[];
  apply(ctx: Ctx): void;
  restore(ctx: Ctx): void;
  /** Another stack to run preview/up with (default: the suite's stack). */
  stack?(ctx: Ctx): TestStack;
}

export function badConfigCases(ctx: Ctx): void {
  const cases: BadCase[] = [
    {
      name: "SSH port out of range (server.port = 99999)",
      message: /flask-deploy:server\.port: .*65535/,
      apply: (c) => c.stack.setConfig("server.port", "99999"),
      restore: (c) => c.stack.setConfig("server.port", "22"),
    },
    {
      name: "serverName with ';' (nginx directive injection)",
      message: /flask-deploy:serverName: expected '_' or space-separated host names/,
      apply: (c) => c.stack.setConfig("serverName", "example.com; return 301 http://evil.example"),
      restore: (c) => c.stack.mustRun(["config", "rm", "serverName"]),
    },
    {
      name: "unknown strategy (blue_green)",
      message: /flask-deploy:strategy: expected one of: restart, rolling, blue-green, canary/,
      apply: (c) => c.stack.setConfig("strategy", "blue_green"),
      restore: (c) => c.stack.mustRun(["config", "rm", "strategy"]),
    },
    {
      name: "secret given as plain config (secrets.SECRET_KEY without --secret)",
      message: /flask-deploy:secrets: must be set as a secret: pulumi config set --secret --path 'secrets\.NAME'/,
      apply: (c) => c.stack.setConfig("secrets.SECRET_KEY", "plain-oops"),
      restore: (c) => c.stack.setConfig("secrets.SECRET_KEY", "reliability-initial-secret", { secret: true }),
    },
    {
      // Pulumi then marks the whole `secrets` object secret, so only the config file shows it; this
      // stack keeps its config where users do, Pulumi.<stack>.yaml in the project.
      name: "a second secret added without --secret next to an encrypted one",
      message: /flask-deploy:secrets\.API_TOKEN: stored in plaintext in the stack's config file; must be set as a secret/,
      stack: (c) => projectConfigStack(c),
      apply: () => undefined,
      restore: () => undefined,
    },
    {
      name: "malformed migration file name (0003-add-tags.up.sql)",
      message: /flask-deploy:migrationsDir: [^\n]*\n(\s+.*\n)*?\s+0003-add-tags\.up\.sql: bad migration file name; expected NNNN_name\.up\.sql \+ NNNN_name\.down\.sql/,
      show: [/flask-deploy:migrationsDir: /, /0003-add-tags\.up\.sql: bad migration file name/],
      apply: (c) => {
        fs.writeFileSync(path.join(c.migrations.dir, "0003-add-tags.up.sql"), "ALTER TABLE notes ADD COLUMN tags TEXT;\n");
        fs.writeFileSync(path.join(c.migrations.dir, "0003-add-tags.down.sql"), "ALTER TABLE notes DROP COLUMN tags;\n");
      },
      restore: (c) => {
        for (const f of ["0003-add-tags.up.sql", "0003-add-tags.down.sql"]) fs.rmSync(path.join(c.migrations.dir, f));
      },
    },
    {
      name: "typo in a key (wrokers)",
      message: /flask-deploy:wrokers: unknown setting \(a typo\?\); known: .*workers/,
      apply: (c) => c.stack.setConfig("wrokers", "4"),
      restore: (c) => c.stack.mustRun(["config", "rm", "wrokers"]),
    },
  ];

  let extra: TestStack | undefined;
  after(() => extra?.remove());

  /** A stack aimed at the same server whose config file is Pulumi.<stack>.yaml in the project. */
  function projectConfigStack(c: Ctx): TestStack {
    if (extra) return extra;
    extra = new TestStack("rel-plain");
    // the file `pulumi stack init` wrote beside Pulumi.yaml (removed again by `pulumi stack rm`)
    Object.assign(extra, { configFile: path.join(PROJECT_DIR, "Pulumi.rel-plain.yaml") });
    extra.target(c.server, c.settings);
    extra.setConfig("secrets.SECRET_KEY", "reliability-initial-secret", { secret: true });
    extra.setConfig("secrets.API_TOKEN", "plaintext-token-value");
    assert.match(fs.readFileSync(extra.configFile, "utf8"), /API_TOKEN: plaintext-token-value/);
    return extra;
  }

  for (const bc of cases) {
    rcase(CATEGORY, bc.name, "preview and up both fail naming the key and the expected form; nothing on the server changes, no SSH login", async (o) => {
      const before = snapshot(ctx.server);
      const notesBefore = await notes(ctx);
      const stack = bc.stack ? bc.stack(ctx) : ctx.stack;
      bc.apply(ctx);
      let p, u;
      try {
        p = stack.preview();
        u = await stack.runAsync(["up", "--yes", "--skip-preview"]);
      } finally {
        bc.restore(ctx);
      }
      assert.notStrictEqual(p.status, 0, `preview must fail:\n${tail(p.output)}`);
      assert.match(p.output, bc.message, `preview output:\n${tail(p.output)}`);
      assert.notStrictEqual(u.status, 0, `up must fail:\n${tail(u.output)}`);
      assert.match(u.output, bc.message, `up output:\n${tail(u.output)}`);
      assert.doesNotMatch(u.output, /unhandled exception|    at /, "a config error is reported without a stack trace");
      o.note(`preview exit ${p.status}, up exit ${u.status}: ${(bc.show ?? [bc.message]).map((re) => `"${line(u.output, re)}"`).join(" / ")}`);
      const after = snapshot(ctx.server);
      assert.deepStrictEqual(diffLines(before.listing, after.listing), [], "the server changed");
      assert.strictEqual(after.logins, before.logins, "pulumi logged in to the server");
      assert.deepStrictEqual(await notes(ctx), notesBefore);
      o.note(`server fingerprint unchanged (${before.listing.split("\n").length} lines), ${after.logins - before.logins} SSH logins`);
    });
  }

  rcase(CATEGORY, "config restored after the refusals", "the next up changes nothing: the refused runs left no trace in state or on the server", async (o) => {
    const history = ctx.server.ssh("wc -l < /srv/flaskapp/history.jsonl");
    const r = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
    assert.strictEqual(r.status, 0, tail(r.output));
    assert.deepStrictEqual(changed(r.output), [], tail(r.output));
    assert.strictEqual(ctx.server.ssh("wc -l < /srv/flaskapp/history.jsonl"), history, "no activation ran");
    o.note("up exit 0, 0 changes, no activation");
  });
}
