// 5. Concurrency: two ups of one stack (Pulumi's stack lock), two stacks deploying one app to one
//    server (the server-side deploy lock, lib.sh with_deploy_lock), a lock left by a killed deploy.
// 6. SSH trust: a server whose host key changed, and a wrong key pinned in config: refused before
//    anything runs (no login, nothing on the server changes).
// 7. Idempotency: the summary of the "next up changes nothing" checks every case made.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { get } from "../app-copy";
import { unitExposure } from "../fixture";
import { RunResult, TestStack } from "../pulumi";
import {
  Ctx, diffLines, health, idempotencyStats, inside, keepLog, line, poll, rcase, requireInstall, setMarker, snapshot, tail, upConverges, waitFor, waitForProcess,
} from "./harness";
import { tempDir } from "../../tmpdir";

function lockFiles(stack: TestStack): string[] {
  const dir = path.join(stack.dir, "state", ".pulumi", "locks");
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".json"));
}

const marker = async (ctx: Ctx) => (await get(`${ctx.base}/api/marker`)).json().marker;

export function concurrencyCases(ctx: Ctx): void {
  const CATEGORY = "concurrency";

  rcase(CATEGORY, "two `pulumi up` on the same stack at once",
    "the second is refused at once by Pulumi's stack lock, with a message saying so; the first converges",
    async (o) => {
      setMarker(ctx, "same stack twice");
      const first = ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      await waitFor("the first up to take the stack lock", () => lockFiles(ctx.stack).length > 0, 60, 50);
      const t0 = Date.now();
      const second = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      const secondSeconds = (Date.now() - t0) / 1000;
      assert.notStrictEqual(second.status, 0, `the second up must be refused:\n${tail(second.output)}`);
      assert.match(second.output, /currently locked/i, tail(second.output));
      o.note(`second up exit ${second.status} after ${secondSeconds.toFixed(1)} s: "${line(second.output, /locked/i)}"`);
      await upConverges(ctx, "same stack twice", o, await first);
      assert.strictEqual(await marker(ctx), "same stack twice");
    });

  rcase(CATEGORY, "two stacks (separate state) deploy the same app to the same server at once",
    "the server-side deploy lease serialises their deploys: both converge, one waits and names the other's deploy (its stack); the live app answers every request",
    async (o) => {
      const other = new TestStack("rel-b");
      let ours: RunResult | undefined;
      try {
        // the same config (and so the same passphrase) as the suite's stack: two copies of one project
        Object.assign(other.env, { PULUMI_CONFIG_PASSPHRASE: ctx.stack.env.PULUMI_CONFIG_PASSPHRASE });
        fs.copyFileSync(ctx.stack.configFile, other.configFile);
        setMarker(ctx, "two stacks");
        const poller = poll(ctx);
        // the second stack first; the suite's stack starts once that deploy holds the server's lease
        // (mid-deploy, between two of its steps), so the two deploys overlap every time
        const second = other.runAsync(["up", "--yes", "--skip-preview"]);
        await waitFor("the second stack's deploy to hold the lease", () =>
          inside(ctx.server, "cat /run/fdeploy/flaskapp.lease 2>/dev/null || true", { allowFail: true }).includes(`/${other.name}"`), 120, 200);
        const [a, b] = await Promise.all([ctx.stack.runAsync(["up", "--yes", "--skip-preview"]), second]);
        const polled = await poller.stop();
        ours = a;
        keepLog(ctx, "two stacks a", a.output);
        keepLog(ctx, "two stacks b", b.output);
        assert.strictEqual(a.status, 0, `the suite's stack did not converge:\n${tail(a.output)}`);
        assert.strictEqual(b.status, 0, `the second stack did not converge:\n${tail(b.output)}`);
        // the suite's stack waited for the other deploy as a whole, naming it (project/stack)
        const waiting = new RegExp(`waiting for another deploy of 'flaskapp' on this server to finish \\(the deploy of stack [^/\\s]+/${other.name} \\(between two of its steps`);
        assert.match(a.output, waiting, `the suite's stack did not wait for the other deploy's lease:\n${tail(a.output)}`);
        o.note(`both converged; the suite's stack waited, logging "${line(a.output, /waiting for another deploy.*the deploy of stack/)}"`);
        assert.strictEqual(polled.failures, 0, `requests failed: ${polled.errors.join(", ")}`);
        o.note(`${polled.requests} requests meanwhile, 0 failed`);
        const installs = [a, b].map((r) => (/release [0-9a-f]{12} installed in/.test(r.output) ? "installed" : /already installed/.test(r.output) ? "reused" : "-"));
        o.note(`release install: ${installs.join("/")}`);
        // the one that waited must not remove and reinstall a release the other one installed (and
        // may already have made live)
        assert.ok(installs.filter((i) => i === "installed").length <= 1, "the release was installed twice");
        assert.strictEqual(await marker(ctx), "two stacks");
        assert.strictEqual((await health(ctx)).release, ctx.stack.outputs().releaseId);
      } finally {
        other.remove(); // its state only: destroying it would remove the suite's app
      }
      await upConverges(ctx, "after two stacks", o, ours?.status === 0 ? ours : undefined);
    });

  rcase(CATEGORY, "a deploy killed with kill -9 while it holds the server's deploy lock",
    "that up fails; the lock dies with the process (its orphaned pip child releases it when done); the next up proceeds and converges; live app serves throughout",
    async (o) => {
      setMarker(ctx, "after kill -9");
      requireInstall(ctx, "kill -9");
      const poller = poll(ctx);
      const up = ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      await waitForProcess(ctx.server, "pip.*install");
      const owner = inside(ctx.server, "cat /run/fdeploy/flaskapp.lock.owner").trim();
      const pid = owner.split(" ")[0];
      const what = inside(ctx.server, `ps -o args= -p ${pid}`).trim();
      assert.match(what, /agent release-install/, `the lock owner is ${what}`);
      inside(ctx.server, `kill -9 ${pid}`);
      o.note(`kill -9 of the lock holder (${what.replace(/^python3 -I -B \S+\//, "")})`);
      const r = await up;
      assert.notStrictEqual(r.status, 0, tail(r.output));
      o.note(`up exit ${r.status}: "${line(r.output, /(signal|exit|status)/i)}"`);
      const t0 = Date.now();
      const next = await upConverges(ctx, "after kill -9", o);
      const polled = await poller.stop();
      o.note(`next up done in ${((Date.now() - t0) / 1000).toFixed(1)} s${/waiting for another deploy/.test(next.output) ? " (waited for the orphan first)" : ""}`);
      assert.strictEqual(polled.failures, 0, `requests failed: ${polled.errors.join(", ")}`);
      assert.strictEqual(await marker(ctx), "after kill -9");
      assert.strictEqual(inside(ctx.server, "pgrep -f '[a]gent release-install' || true").trim(), "", "a deploy process is left");
    });
}

export function trustCases(ctx: Ctx): void {
  const CATEGORY = "SSH trust";
  // the official plugin retries every dial, a host key mismatch too (dialErrorLimit), then names it
  const mismatch = /error: after \d+ failed attempts: ssh: handshake failed: ssh: host key mismatch/;

  async function refused(o: { note(s: string): void }, change: () => void): Promise<void> {
    const before = snapshot(ctx.server);
    change();
    const r = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
    assert.notStrictEqual(r.status, 0, tail(r.output));
    assert.match(r.output, mismatch, tail(r.output));
    o.note(`up exit ${r.status}: "${line(r.output, mismatch)}"`);
    const after = snapshot(ctx.server);
    assert.deepStrictEqual(diffLines(before.listing, after.listing), [], "the server changed");
    assert.strictEqual(after.logins, before.logins, "an SSH login was accepted");
    o.note("server unchanged, 0 SSH logins accepted");
  }

  rcase(CATEGORY, "the server's host key changed (re-generated, sshd restarted)",
    "up refused before login (ssh: host key mismatch, after the plugin's dial retries); nothing on the server changes; with the key back the next up converges",
    async (o) => {
      inside(ctx.server, "cp -a /etc/ssh/ssh_host_ed25519_key /run/hk && cp -a /etc/ssh/ssh_host_ed25519_key.pub /run/hk.pub && " +
        "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && " +
        "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh");
      try {
        await refused(o, () => ctx.stack.setConfig("env.APP_GREETING", "greeting set while the host key is wrong"));
      } finally {
        inside(ctx.server, "mv -f /run/hk /etc/ssh/ssh_host_ed25519_key && mv -f /run/hk.pub /etc/ssh/ssh_host_ed25519_key.pub && systemctl restart ssh");
      }
      await upConverges(ctx, "host key restored", o);
      assert.match((await get(`${ctx.base}/`)).text, /greeting set while the host key is wrong/);
    });

  rcase(CATEGORY, "a wrong host key pinned in config (server.hostKey)",
    "up refused before login (ssh: host key mismatch); nothing on the server changes; with the right key the next up changes nothing",
    async (o) => {
      const dir = tempDir("fdeploy-rel-key-");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "k")]);
      const wrong = fs.readFileSync(path.join(dir, "k.pub"), "utf8").split(" ").slice(0, 2).join(" ");
      fs.rmSync(dir, { recursive: true, force: true });
      try {
        await refused(o, () => ctx.stack.setConfig("server.hostKey", wrong));
      } finally {
        ctx.stack.setConfig("server.hostKey", ctx.server.hostKey);
      }
      const r = await ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      assert.strictEqual(r.status, 0, tail(r.output));
      assert.doesNotMatch(r.output, /\b(created|updated|replaced|deleted)\b/, tail(r.output));
      o.note("with the right key: up exit 0, 0 changes");
    });
}

export function sandboxCases(ctx: Ctx): void {
  rcase("sandbox", "systemd-analyze security of the app unit (fdeploy-flaskapp@main.service)",
    "exposure at most 2.5 (the unit's sandbox: the agent's hardening.conf)",
    (o) => {
      const { exposure, rating } = unitExposure(ctx.server, "fdeploy-flaskapp@main.service");
      assert.ok(exposure <= 2.5, `exposure ${exposure} ${rating}`);
      o.note(`exposure ${exposure} ${rating}`);
    });
}

export function idempotencySummary(ctx: Ctx): void {
  rcase("idempotency", "every successful up above was followed by an up that changed nothing",
    "0 remote commands and no activation in each follow-up up, and one more pair now, after every case above",
    async (o) => {
      // a check of its own (not only the count of the others'): after all the faults above, an up
      // and the up after it, which must change nothing
      await upConverges(ctx, "after every case");
      const s = idempotencyStats();
      assert.ok(s.count >= 10, `only ${s.count} converged ups were checked`);
      o.note(`${s.count} follow-up ups, all with 0 changes: ${s.labels.join(", ")}`);
    });
}
