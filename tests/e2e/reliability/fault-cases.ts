// 4. Faults in the middle of a deploy. Each one: the deploy fails with a clear message while
//    /health is polled (the live release must keep answering, except through a reboot, after which
//    it must come back by itself); the notes written before are still there; after the fix the next
//    `pulumi up` converges and the up after that changes nothing.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { get } from "../app-copy";
import {
  APP_ROOT, Ctx, health, hostRun, inside, keepLog, line, notes, Obs, poll, PollResult, rcase, requireInstall, setMarker, sleep, tail, upConverges, waitFor,
  waitForProcess,
} from "./harness";

const CATEGORY = "faults";

interface Fault {
  /** Break something (locally or on the server) before the up. */
  inject(): void | Promise<void>;
  /** Runs while the failing up is under way (e.g. drop the connection once pip runs). */
  during?(): Promise<void>;
  /** The up's output must match all of these. */
  expect: RegExp[];
  /** Whether the live release must keep answering every request during the fault. */
  keepsServing?: boolean;
  /** Checks after the failed up, before the fix. */
  afterFailure?(o: Obs, polled: PollResult, live: string): Promise<void> | void;
  /** Undo the fault; the next up must converge. */
  fix(): void | Promise<void>;
  /** The marker the converged release answers with (default: the one before the fault). */
  marker?: string;
}

/** How the official command plugin reports an SSH session that ended without an exit status. */
// (the step's command line: the agent's supervisor, then the script)
const LOST_SESSION = /error: wait: remote command exited without exit status or exit signal: running "python3 -I -B \S+\/agent supervise \d+ release-install timeouts\.build --lock-wait \d+ -- python3 -I -B \S+\/agent release-install"/;

export function faultCases(ctx: Ctx): void {
  /** The common course of a fault case (see the file comment). */
  async function runFault(o: Obs, label: string, f: Fault): Promise<void> {
    const before = await health(ctx);
    assert.strictEqual(before.status, 200, "the app serves before the fault");
    const live = before.release!;
    const notesBefore = await notes(ctx);
    const m = await get(`${ctx.base}/api/marker`);
    const markerBefore = m.status === 200 ? m.json().marker : undefined;
    let fixed = false, ok = false;
    const fix = async () => {
      if (!fixed) await f.fix();
      fixed = true;
    };
    try {
      await f.inject();
      const poller = poll(ctx);
      const up = ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      if (f.during) await f.during();
      const r = await up;
      const polled = await poller.stop();
      keepLog(ctx, `fault ${label}`, r.output);
      assert.notStrictEqual(r.status, 0, `the up must fail:\n${tail(r.output)}`);
      for (const re of f.expect) assert.match(r.output, re, `up output:\n${tail(r.output, 6000)}`);
      o.note(`up exit ${r.status}: ${[...new Set(f.expect.map((re) => `"${line(r.output, re)}"`))].join(" / ")}`);
      if (f.keepsServing ?? true) {
        assert.strictEqual(polled.failures, 0, `requests failed during the fault: ${polled.errors.join(", ")}`);
        assert.deepStrictEqual(polled.releases, [live], "another release answered during the fault");
        o.note(`${polled.requests} requests during the fault, 0 failed, release ${live} kept serving`);
      }
      if (f.afterFailure) await f.afterFailure(o, polled, live);
      assert.deepStrictEqual((await notes(ctx)).slice(0, notesBefore.length), notesBefore, "notes written before the fault are gone");
      o.note(`${notesBefore.length} notes intact`);
      ok = true;
    } finally {
      // also when an assertion failed: the fault must not stay for the cases after this one
      try {
        await fix();
      } catch (e) {
        if (ok) throw e; // otherwise the first failure is the one to report
      }
    }
    await upConverges(ctx, `${label}: after the fix`, o);
    assert.strictEqual((await get(`${ctx.base}/api/marker`)).json().marker, f.marker ?? markerBefore, "the fixed release is live");
    assert.deepStrictEqual((await notes(ctx)).slice(0, notesBefore.length), notesBefore);
  }

  /** Release folders without the installed marker (a half-installed release left behind). */
  const halfInstalled = () =>
    inside(ctx.server, `for d in ${APP_ROOT}/releases/*/; do [ -f "$d.fdeploy-release.json" ] || echo "$d"; done
      for v in ${APP_ROOT}/venvs/*/; do [ ! -d "$v" ] || [ -f "$v.fdeploy-built" ] || echo "$v"; done`).trim();

  rcase(CATEGORY, "app with an import error", "up fails naming the app's exception; the live release answers every request meanwhile; the fix converges",
    (o) => runFault(o, "import error", {
      inject: () => {
        setMarker(ctx, "import error (broken)");
        ctx.app.edit("wsgi.py", (s) => "import fdeploy_missing_module  # rel-fault\n" + s);
      },
      expect: [/No module named 'fdeploy_missing_module'/, /release [0-9a-f]{12} .*(not live|untouched|keeps serving)/],
      fix: () => {
        ctx.app.edit("wsgi.py", (s) => s.replace("import fdeploy_missing_module  # rel-fault\n", ""));
        setMarker(ctx, "import error fixed");
      },
      marker: "import error fixed",
    }));

  rcase(CATEGORY, "a requirement that cannot be installed (not in the wheelhouse)",
    "up fails before any switch with pip's reason; no half-installed release left; live release serves throughout; the fix converges",
    (o) => runFault(o, "bad requirement", {
      inject: () => {
        setMarker(ctx, "requirement (broken)");
        ctx.app.edit("requirements.txt", (s) => s.trimEnd() + "\nfdeploy-no-such-package==9.9.9\n");
      },
      expect: [/pip install -r requirements\.txt failed for release [0-9a-f]{12} .*the live release is unchanged/, /fdeploy-no-such-package/],
      afterFailure: (o) => {
        assert.strictEqual(halfInstalled(), "", "a half-installed release was left behind");
        o.note("no half-installed release left");
      },
      fix: () => {
        ctx.app.edit("requirements.txt", (s) => s.replace("fdeploy-no-such-package==9.9.9\n", ""));
        setMarker(ctx, "requirement fixed");
      },
      marker: "requirement fixed",
    }));

  rcase(CATEGORY, "a failing migration (0003 inserts into a missing table)",
    "up fails naming the migration and SQLite's error; schema stays at 2, no partial column, integrity ok; live release serves throughout; the fix converges",
    (o) => runFault(o, "failing migration", {
      inject: () => {
        setMarker(ctx, "migration (broken)");
        fs.writeFileSync(path.join(ctx.migrations.dir, "0003_broken.up.sql"),
          "ALTER TABLE notes ADD COLUMN broken_col TEXT;\nINSERT INTO no_such_table VALUES (1);\n");
        fs.writeFileSync(path.join(ctx.migrations.dir, "0003_broken.down.sql"), "ALTER TABLE notes DROP COLUMN broken_col;\n");
      },
      expect: [/no such table: no_such_table/, /0003_broken/],
      afterFailure: (o) => {
        const db = `${APP_ROOT}/shared/db/app.sqlite3`;
        const out = ctx.server.ssh(`sqlite3 ${db} 'SELECT max(version) FROM schema_migrations' 'PRAGMA integrity_check' ` +
          `"SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'broken_col'"`).trim().split("\n");
        assert.deepStrictEqual(out, ["2", "ok", "0"], "schema version, integrity, partial column");
        o.note("schema_version 2, integrity_check ok, no broken_col");
      },
      fix: () => {
        for (const f of ["0003_broken.up.sql", "0003_broken.down.sql"]) fs.rmSync(path.join(ctx.migrations.dir, f));
        setMarker(ctx, "migration fixed");
      },
      marker: "migration fixed",
    }));

  rcase(CATEGORY, "nginx config rejected by `nginx -t` (a broken file in conf.d, then serverName changes)",
    "up fails clearly naming nginx -t and the broken file; the site file and the running nginx keep the old config; the fix converges",
    async (o) => {
      const site = "/etc/nginx/sites-available/fdeploy-flaskapp.conf";
      const siteBefore = ctx.server.ssh(`sha256sum ${site}`);
      try {
        await runFault(o, "nginx rejected", {
          inject: () => {
            // no code change: only the nginx step (and the health check after it) runs
            ctx.server.ssh("printf 'this is not nginx syntax\\n' > /etc/nginx/conf.d/zz-rel-broken.conf");
            ctx.stack.setConfig("serverName", "rel.example.test");
          },
          expect: [/nginx's configuration is invalid apart from this site/, /zz-rel-broken\.conf/],
          afterFailure: (o) => {
            assert.strictEqual(ctx.server.ssh(`sha256sum ${site}`), siteBefore, "the site file changed");
            assert.strictEqual(ctx.server.ssh("systemctl is-active nginx").trim(), "active");
            o.note("site file unchanged, nginx active on the old config");
          },
          fix: () => void ctx.server.ssh("rm -f /etc/nginx/conf.d/zz-rel-broken.conf"),
        });
        assert.match(ctx.server.ssh(`grep server_name ${site}`), /server_name rel\.example\.test;/);
      } finally {
        ctx.stack.mustRun(["config", "rm", "serverName"]);
      }
      await upConverges(ctx, "serverName restored");
    });

  rcase(CATEGORY, "disk full on the release volume (a full tmpfs over releases/, live releases copied in)",
    "up fails before any switch saying the release volume is full; no half-installed release left; live release serves throughout; after freeing space the next up converges",
    (o) => runFault(o, "disk full", {
      inject: () => {
        setMarker(ctx, "disk full fixed");
        requireInstall(ctx, "disk full");
        // releases/ and venvs/ (one volume on a real server): each real folder stays reachable at
        // /run/rel-orig-<name>; a tmpfs over it gets a copy of it and is then filled up to 1 MiB
        inside(ctx.server, `set -e
          for n in releases venvs; do
            d=${APP_ROOT}/$n
            mkdir -p /run/rel-orig-$n && mount --bind $d /run/rel-orig-$n && mount --make-private /run/rel-orig-$n
            kb=$(du -sk $d | cut -f1)
            mount -t tmpfs -o size=$((kb + kb / 4 + 8192))k,mode=0755 rel-full-$n $d
            cp -a /run/rel-orig-$n/. $d/
            avail=$(df --output=avail -k $d | tail -1)
            fallocate -l $(( (avail - 1024) * 1024 )) $d/.rel-filler || dd if=/dev/zero of=$d/.rel-filler bs=1k count=$((avail - 1024)) status=none
          done`);
        o.note(`releases/ and venvs/ on full tmpfs (${inside(ctx.server, `df -h --output=size,avail ${APP_ROOT}/releases | tail -1`).trim().replace(/\s+/g, " ")} size/avail)`);
      },
      expect: [/installing release [0-9a-f]{12} failed: the release volume is nearly full \(\d+ MiB free in \/srv\/flaskapp\/(releases|venvs)\)/],
      afterFailure: (o) => {
        assert.strictEqual(halfInstalled(), "", "a half-installed release was left behind");
        o.note("no half-installed release left on the full volume");
      },
      fix: () => {
        inside(ctx.server, `for n in releases venvs; do d=${APP_ROOT}/$n; { umount $d || umount -l $d; } && umount /run/rel-orig-$n && rmdir /run/rel-orig-$n; done`);
      },
      marker: "disk full fixed",
    }));

  rcase(CATEGORY, "SSH connection dropped mid-deploy (sshd sessions killed while pip installs)",
    "up fails naming the lost connection; live release serves throughout; the next up converges (the interrupted install is finished or redone)",
    (o) => runFault(o, "ssh dropped", {
      inject: () => { setMarker(ctx, "after ssh drop"); requireInstall(ctx, "ssh drop"); },
      during: async () => {
        await waitForProcess(ctx.server, "pip.*install");
        inside(ctx.server, "pkill -KILL -f '^sshd: root@' || true");
        o.note("killed the server's sshd sessions while pip ran");
      },
      expect: [LOST_SESSION, /command:remote:Command \(app-release-install\):/],
      fix: () => undefined,
      marker: "after ssh drop",
    }));

  rcase(CATEGORY, "network link down for 8 s mid-deploy (the server's veth, from the host, while pip installs)",
    "the deploy rides it out (TCP retransmits: the SSH session resumes, new dials retry): the up succeeds; the app serves again once the link is back; the next up changes nothing",
    async (o) => {
      setMarker(ctx, "after link down");
      requireInstall(ctx, "link down");
      const up = ctx.stack.runAsync(["up", "--yes", "--skip-preview"]);
      await waitForProcess(ctx.server, "pip.*install");
      const veth = `fd-${ctx.server.name}`;
      hostRun("ip", ["link", "set", veth, "down"]);
      const t0 = Date.now();
      try {
        await sleep(8000);
      } finally {
        hostRun("ip", ["link", "set", veth, "up"]);
      }
      const r = await up;
      keepLog(ctx, "fault link down", r.output);
      o.note(`link down 8 s while pip ran; that up exit ${r.status}, ${((Date.now() - t0) / 1000).toFixed(1)} s after the link went down`);
      // 8 s is well inside TCP's retransmission and the provider's dial retries: one outcome only
      assert.strictEqual(r.status, 0, `the up did not ride out an 8 s outage:\n${tail(r.output)}`);
      await waitFor("the app to answer again", async () => (await health(ctx)).status === 200, 60, 250);
      await upConverges(ctx, "after link down", o, r);
      assert.strictEqual((await get(`${ctx.base}/api/marker`)).json().marker, "after link down");
    });

  let booted = "";
  rcase(CATEGORY, "server rebooted mid-deploy (systemctl reboot while pip installs)",
    "up fails; after the reboot the old release serves again by itself (units enabled, live.sock restored by tmpfiles.d), notes intact; the next up converges",
    (o) => runFault(o, "reboot", {
      inject: () => {
        setMarker(ctx, "after reboot");
        requireInstall(ctx, "reboot");
        booted = inside(ctx.server, "ps -o lstart= -p 1").trim();
      },
      during: async () => {
        await waitForProcess(ctx.server, "pip.*install");
        inside(ctx.server, "systemctl reboot", { allowFail: true });
        o.note("rebooted the server while pip ran");
      },
      // the session dies with the server, or release.sh first sees its build unit stopped by the shutdown
      expect: [new RegExp(`${LOST_SESSION.source}|the venv build of release [0-9a-f]{12} was interrupted before it finished`), /command:remote:Command \(app-release-install\):/],
      keepsServing: false,
      afterFailure: async (o, polled, live) => {
        const t0 = Date.now();
        await waitFor("the server to boot again", () => {
          const now = inside(ctx.server, "ps -o lstart= -p 1", { allowFail: true }).trim();
          return now !== "" && now !== booted;
        }, 120, 250);
        await waitFor("the app to serve again after the reboot", async () => (await health(ctx)).status === 200, 120, 250);
        o.note(`served again ${((Date.now() - t0) / 1000).toFixed(1)} s after the failed up (longest outage seen while it ran ${polled.longestOutageSeconds.toFixed(1)} s)`);
        assert.strictEqual((await health(ctx)).release, live, "the live release changed across the reboot");
        const boot = ctx.server.ssh("systemctl is-enabled fdeploy-flaskapp@main.socket fdeploy-flaskapp@main.service nginx; " +
          "readlink /run/fdeploy-flaskapp/live.sock; systemctl is-active fdeploy-flaskapp@main.service");
        assert.deepStrictEqual(boot.trim().split("\n"), ["enabled", "enabled", "enabled", "/run/fdeploy-flaskapp/main.sock", "active"]);
        o.note("after boot: units enabled, live.sock -> main.sock, service active, same release");
      },
      fix: () => undefined,
      marker: "after reboot",
    }));
}

