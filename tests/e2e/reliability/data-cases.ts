// 2. Injection: config values that reach the server travel as data (JSON on stdin), never as shell
//    text: hostile env values and secrets deploy, nothing they "say" runs (here or on the server),
//    the app sees them byte for byte, and a newline is refused before anything runs.
// 3. Secrets: a rotated secret reaches the app and appears nowhere else: not in pulumi output (also
//    at -v=9), the state, the stack's config file, process argument lists on the server during the
//    deploy, the journal, any other file on the server; .env is 0600 and shared/ is closed.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { get } from "../app-copy";
import {
  APP_ROOT, Ctx, diffLines, ENV_FILE, filesContaining, inside, keepLog, line, notes, rcase, snapshot, tail, upConverges, upperDir, watchProcessList,
} from "./harness";

/** Plain env values (config `env.NAME`): shell, quoting, systemd and JSON metacharacters, unicode. */
export const HOSTILE_ENV: Record<string, string> = {
  INJ_SUBST: "$(touch /tmp/pwned-subst)",
  INJ_BACKTICK: "`touch /tmp/pwned-backtick`",
  INJ_SQUOTE: "it's '$(touch /tmp/pwned-squote)'",
  INJ_DQUOTE: 'say "hi"; touch /tmp/pwned-dquote; echo "',
  INJ_SEMI: "a; touch /tmp/pwned-semi && touch /tmp/pwned-and | touch /tmp/pwned-pipe",
  INJ_BACKSLASH: 'C:\\temp\\new \\" \\$HOME \\`x\\` \\\\ end\\',
  INJ_DOLLAR: "$HOME ${PATH} $$ $1 %h %i %%",
  INJ_UNICODE: "héllo wörld — 日本語 🚀 \u200b",
  INJ_JSON: '{"APP": "evil", "ENV": "x"}',
  INJ_SPACES: "  padded  ",
  INJ_HASH: "value # not a comment",
  INJ_DASH: "--help -rf /tmp/pwned-dash",
  INJ_EQUALS: "a=b=c",
  INJ_TAB: "a\tb",
  INJ_EMPTY: "",
};
/** Secret values (config `secrets.NAME`, --secret). */
export const HOSTILE_SECRETS: Record<string, string> = {
  INJS_SUBST: "$(touch /tmp/pwned-secret)`touch /tmp/pwned-secret2`",
  INJS_QUOTES: `pa'ss"w\\ord;|&<>(){}*?~!#`,
};

function pwnedFiles(ctx: Ctx): string[] {
  const remote = inside(ctx.server, "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -name 'pwned*' -print 2>/dev/null || true")
    .split("\n").filter(Boolean);
  const local = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith("pwned")).map((f) => `local:${path.join(os.tmpdir(), f)}`);
  return [...remote, ...local];
}

/** Every remote command line in the state: only a script name and a verb, never a value. */
function commandLines(state: string): string[] {
  const out: string[] = [];
  for (const r of JSON.parse(state).deployment.resources ?? []) {
    if (r.type !== "command:remote:Command") continue;
    for (const k of ["create", "update", "delete"]) if (typeof r.inputs?.[k] === "string") out.push(r.inputs[k]);
  }
  return out;
}
// every step under the agent's supervisor: its time limit, its name and the limit's config key
const SAFE_COMMAND = /^(sudo -n )?python3 -I -B \.fdeploy\/flaskapp\/scripts-[0-9a-f]{12}\/agent supervise \d+ [a-z0-9-]+ timeouts\.[A-Za-z]+ --lock-wait \d+ -- python3 -I -B \.fdeploy\/flaskapp\/scripts-[0-9a-f]{12}\/agent [a-z-]+( --app [a-z0-9-]+)?$/;

export function injectionCases(ctx: Ctx): void {
  const CATEGORY = "injection";

  rcase(CATEGORY, `hostile env values and secrets (${Object.keys(HOSTILE_ENV).length + Object.keys(HOSTILE_SECRETS).length}: $( ), backticks, quotes, ;, \\, $VAR, %specifiers, JSON, unicode, tab, empty)`,
    "up succeeds; no /tmp/pwned* anywhere (server or here); the app sees every value byte for byte; command lines hold no value",
    async (o) => {
      // plain values in one call (they are not secret); secrets one by one on stdin
      ctx.stack.mustRun(["config", "set-all", "--path", ...Object.entries(HOSTILE_ENV).flatMap(([k, v]) => ["--plaintext", `env.${k}=${v}`])]);
      for (const [k, v] of Object.entries(HOSTILE_SECRETS)) ctx.stack.setConfig(`secrets.${k}`, v, { secret: true });
      const ps = watchProcessList(ctx.server);
      const r = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      const psLog = ps.stop();
      await upConverges(ctx, "hostile values", o, r);
      assert.deepStrictEqual(pwnedFiles(ctx), [], "an injected command ran");
      o.note("no pwned* file on the server or locally");
      const seen = (await get(`${ctx.base}/api/env`)).json();
      const want = { ...HOSTILE_ENV, ...HOSTILE_SECRETS };
      const wrong = Object.keys(want).filter((k) => seen[k] !== want[k]).map((k) => `${k}: got ${JSON.stringify(seen[k])}`);
      assert.deepStrictEqual(wrong, [], "values the app sees differ");
      o.note(`app sees all ${Object.keys(want).length} values exactly`);
      assert.match(psLog, /agent (env-stage|activate)/, "the process list samples cover the deploy's remote steps");
      assert.ok(!psLog.includes("pwned"), "a value appeared in a process argument list on the server");
      const lines = commandLines(ctx.stack.stateText());
      assert.ok(lines.length >= 8, `remote commands in the state: ${lines.length}`);
      assert.deepStrictEqual(lines.filter((l) => !SAFE_COMMAND.test(l)), [], "a remote command line holds more than a script name and verb");
      o.note(`${lines.length} remote command lines = script + verb only; values absent from ps during the deploy`);
    });

  rcase(CATEGORY, "newline in an env value and in a secret",
    "preview and up refuse both, naming env.X and secrets.Y, without echoing the secret; nothing on the server changes",
    async (o) => {
      const secretPart = `nl-${crypto.randomBytes(6).toString("hex")}`;
      const before = snapshot(ctx.server);
      ctx.stack.setConfig("env.INJ_NEWLINE", "line one\nline two");
      ctx.stack.setConfig("secrets.INJS_NEWLINE", `${secretPart}\n${secretPart}-2`, { secret: true });
      let p, u;
      try {
        p = ctx.stack.preview();
        u = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      } finally {
        ctx.stack.mustRun(["config", "rm", "--path", "env.INJ_NEWLINE"]);
        ctx.stack.mustRun(["config", "rm", "--path", "secrets.INJS_NEWLINE"]);
      }
      for (const [what, r] of [["preview", p], ["up", u]] as const) {
        assert.notStrictEqual(r.status, 0, `${what} must fail`);
        assert.match(r.output, /flask-deploy:env\.INJ_NEWLINE: expected a single-line value/, `${what}:\n${tail(r.output)}`);
        assert.match(r.output, /flask-deploy:secrets\.INJS_NEWLINE: expected a single-line value/, `${what}:\n${tail(r.output)}`);
        assert.ok(!r.output.includes(secretPart), `${what} printed the secret`);
      }
      o.note(`preview exit ${p.status}, up exit ${u.status}: "${line(u.output, /env\.INJ_NEWLINE/)}" and the same for secrets.INJS_NEWLINE; secret not echoed`);
      const after = snapshot(ctx.server);
      assert.deepStrictEqual(diffLines(before.listing, after.listing), [], "the server changed");
      assert.strictEqual(after.logins, before.logins, "pulumi logged in to the server");
      o.note("server unchanged, 0 SSH logins");
    });
}

export function secretCases(ctx: Ctx): void {
  const CATEGORY = "secrets";

  /** Journal entries of this boot (all fields, JSON) holding `needle`; the needle travels on stdin. */
  const journalCount = (needle: string) =>
    Number(ctx.server.ssh("p=$(cat); journalctl -b --no-pager -o json | grep -c -F -f <(printf '%s\\n' \"$p\") || true", needle).trim());

  /** Places on the server (besides the app's env file) and here that hold `secret`. */
  function leaks(secret: string): string[] {
    const found: string[] = [];
    const upper = upperDir(ctx.server);
    const files = filesContaining(upper, secret).map((f) => f.slice(upper.length));
    // the search works: it finds the one place the secret belongs
    assert.ok(files.includes(ENV_FILE), `the secret is not in ${ENV_FILE} (searched ${upper})`);
    // the env file in force and its deployed/last-live copies, all in the root-only folder
    const allowed = [ENV_FILE, `${ENV_FILE}.desired`, `${ENV_FILE}.live`];
    found.push(...files.filter((p) => !allowed.includes(p)).map((p) => `server file ${p}`));
    const modes = ctx.server.ssh(`stat -c '%a %U' ${files.filter((p) => allowed.includes(p)).join(" ")}`).trim().split("\n");
    assert.ok(modes.every((m) => m === "600 root"), `env file copies: ${modes.join(", ")}`);
    // tmpfs mounts inside the server (not in the overlay), searched with the needle on stdin
    const tmpfs = ctx.server.ssh("grep -rlaF -f - /run /tmp /var/tmp /dev/shm 2>/dev/null || true", secret).split("\n").filter(Boolean);
    found.push(...tmpfs.map((f) => `server tmpfs ${f}`));
    assert.ok(journalCount("fdeploy-flaskapp") > 0, "the journal search finds nothing at all");
    const journal = journalCount(secret);
    if (journal !== 0) found.push(`server journal (${journal} entries, all fields)`);
    if (ctx.stack.stateText().includes(secret)) found.push("state (stack export)");
    for (const f of filesContaining(ctx.stack.dir, secret)) found.push(`local ${f}`);
    return found;
  }

  /** A line from the private part of the SSH key the stack uses (a secret input of every step). */
  const sshKeyLine = () => fs.readFileSync(ctx.server.keyPath, "utf8").split("\n")[3];

  async function fingerprintMatches(secret: string): Promise<boolean> {
    const fp = (await get(`${ctx.base}/api/secret-fingerprint`)).json().sha256;
    return fp === crypto.createHash("sha256").update(secret).digest("hex");
  }

  rcase(CATEGORY, "rotate SECRET_KEY: search output, state, config file, ps during the deploy, journal, every server file",
    "the app gets the new value; plaintext nowhere but /etc/fdeploy/<app>/env and its .desired/.live copies (root 0600 in a root 0700 folder); shared/ 0750, db/ and backups/ 0700",
    async (o) => {
      const SECRET = `rotated-${crypto.randomBytes(12).toString("hex")}`;
      ctx.stack.setConfig("secrets.SECRET_KEY", SECRET, { secret: true });
      const preview = ctx.stack.run(["preview", "--diff"]);
      assert.strictEqual(preview.status, 0, tail(preview.output));
      const ps = watchProcessList(ctx.server);
      const r = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      const psLog = ps.stop();
      await upConverges(ctx, "secret rotation", o, r);
      assert.ok(await fingerprintMatches(SECRET), "the app does not see the new secret");
      assert.ok(psLog.split("\n").length > 500, `the process list was sampled (${psLog.split("\n").length} lines)`);
      assert.match(psLog, /agent (env-stage|activate)/, "the samples cover the deploy's remote steps");
      const found = [
        ...(preview.output.includes(SECRET) ? ["preview --diff output"] : []),
        ...(r.output.includes(SECRET) ? ["up output"] : []),
        ...(psLog.includes(SECRET) ? ["ps argument lists on the server"] : []),
        ...(fs.readFileSync(ctx.stack.configFile, "utf8").includes(SECRET) ? ["stack config file"] : []),
        ...leaks(SECRET),
      ];
      // the other secret in the state: the SSH private key (connection.privateKey)
      const keyLine = sshKeyLine();
      if (r.output.includes(keyLine) || preview.output.includes(keyLine)) found.push("SSH private key in pulumi output");
      if (ctx.stack.stateText().includes(keyLine)) found.push("SSH private key in the state");
      assert.deepStrictEqual(found, [], "the secret leaked");
      o.note(`app fingerprint matches; plaintext absent from preview/up output, state, config file, ${psLog.split("\n").length} ps lines, journal, server files (only ${ENV_FILE}); SSH private key absent from output and state`);
      const modes = ctx.server.ssh(`stat -c '%n %a %U:%G' ${ENV_FILE} /etc/fdeploy/flaskapp ${APP_ROOT}/shared ${APP_ROOT}/shared/db ${APP_ROOT}/shared/backups ${APP_ROOT}/shared/db/app.sqlite3`);
      const m = Object.fromEntries(modes.trim().split("\n").map((l) => { const [p, ...rest] = l.split(" "); return [p, rest.join(" ")]; }));
      assert.strictEqual(m[ENV_FILE], "600 root:root");
      assert.strictEqual(m["/etc/fdeploy/flaskapp"], "700 root:root");
      // shared/ is the app's group's (its slot users share it: group-writable), never other users'
      assert.strictEqual(m[`${APP_ROOT}/shared`], "770 flaskapp:flaskapp");
      assert.match(m[`${APP_ROOT}/shared/db`], /^770 flaskapp(_[12])?:flaskapp$/);
      assert.match(m[`${APP_ROOT}/shared/backups`], /^770 flaskapp(_[12])?:flaskapp$/);
      assert.match(m[`${APP_ROOT}/shared/db/app.sqlite3`], /^6[46]0 flaskapp(_[12])?:flaskapp$/);
      o.note(modes.trim().split("\n").map((l) => l.replace(`${APP_ROOT}/`, "")).join(", "));
      assert.strictEqual(ctx.server.trySsh(`test -e ${APP_ROOT}/shared/.env`).status, 1, "no environment file in shared/");
    });

  rcase(CATEGORY, "rotate again with `pulumi up --debug --logtostderr -v=9`",
    "the deploy's own channels stay clean (ps, server, state); whether the Pulumi engine's -v=9 log holds the plaintext is reported as a finding",
    async (o) => {
      const SECRET = `debug-${crypto.randomBytes(12).toString("hex")}`;
      ctx.stack.setConfig("secrets.SECRET_KEY", SECRET, { secret: true });
      const started = Date.now();
      const ps = watchProcessList(ctx.server);
      const r = await ctx.stack.runAsync(["up", "--yes", "--skip-preview", "--debug", "--logtostderr", "-v=9"]);
      const psLog = ps.stop();
      await upConverges(ctx, "secret rotation at -v=9", o, r);
      assert.ok(await fingerprintMatches(SECRET), "the app does not see the new secret");
      assert.ok(!psLog.includes(SECRET), "ps argument lists on the server");
      assert.deepStrictEqual(leaks(SECRET), [], "the secret leaked");
      const lines = r.output.split("\n");
      const hits = lines.filter((l) => l.includes(SECRET));
      // log files Pulumi or a plugin may have written meanwhile (with --logtostderr there should be none)
      const logs = fs.readdirSync(os.tmpdir()).map((f) => path.join(os.tmpdir(), f))
        .filter((f) => { try { const s = fs.statSync(f); return s.isFile() && s.mtimeMs >= started; } catch { return false; } })
        .filter((f) => fs.readFileSync(f).includes(SECRET));
      assert.deepStrictEqual(logs, [], "a local log file holds the secret");
      /** Which log statements the lines are ("Marshaling … Check", …). */
      const kinds = (ls: string[]) => [...new Set(ls.map((l) => /(Unmarshaling|Marshaling) property for RPC\[(?:Provider\[[^\]]*\]\.)?([A-Za-z]+(?:\.[A-Za-z]+)?)/.exec(l))
        .map((m) => (m ? `${m[1]} ${m[2]}` : "other")))].join(", ");
      const keyHits = lines.filter((l) => l.includes(sshKeyLine()));
      // kept for inspection with the secret and every line of the key masked (.e2e/ is git-ignored)
      const keyLines = fs.readFileSync(ctx.server.keyPath, "utf8").split("\n").filter((l) => l && !l.startsWith("-----"));
      keepLog(ctx, "secrets v9 masked", keyLines.reduce((t, k) => t.split(k).join("<SSH-KEY>"), r.output.split(SECRET).join("<SECRET>")));
      if (keyHits.length) {
        o.note(`FINDING: ${keyHits.length} -v=9 log lines hold the SSH private key (connection.privateKey, a secret input of every step): ${kinds(keyHits)}`);
      }
      if (hits.length) {
        o.note(`FINDING: ${hits.length} of ${lines.length} -v=9 log lines hold the rotated secret: the Pulumi engine's own debug lines ` +
          `(${kinds(hits)}) print resource inputs unmasked, the whole .env; treat -v=9 logs as secret`);
      } else {
        o.note(`-v=9 output (${lines.length} lines) does not hold the plaintext`);
      }
      o.note("ps, server files, journal, state clean");
    });
}
