// Issue #13, scheduled jobs: `jobs.<name>: {schedule, command}` as systemd timers that run in the
// live release, against one real server (jobs, .161): a job runs on its schedule as the app user
// with the app's environment; after a code-changing deploy the next run runs the new code;
// `fdeploy jobs` (and --json) shows last and next runs; `fdeploy jobs run` runs one now and reports
// a failing one as failed, and while a run of the job is going on waits for that run to end, then
// runs and reports its own (also when its timer began that run); a bad schedule is refused before the server changes; a job removed from
// config loses its timer (the last one too). And fdeploy through a sudo SSH user: status, jobs,
// jobs run, logs (of the app and of a job), exec.
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as path from "path";
import { addSudoUser, TestServer } from "../servers";
import { copyApp } from "./app-copy";
import { assertUnitExposures, deployFresh } from "./fixture";
import { changed, PROJECT_DIR, RunResult, TestStack } from "./pulumi";

const GREETING = "hello from jobs";
const TICKS = "/srv/flaskapp/shared/db/ticks.log";
// one line per run: when, who, the environment it got, the release and the code it ran
const TICK = 'echo "tick t=$(date +%s) user=$(id -un) greeting=$APP_GREETING release=$RELEASE_ID code=$(grep -o \'jobs-marker-[a-z0-9]*\' wsgi.py || echo none) secret=${SECRET_KEY:+set}" | tee -a "$(dirname "$DATABASE_PATH")/ticks.log"';
// its lines go to slow.log and to its output (the journal)
const SLOW = 'd=$(dirname "$DATABASE_PATH"); echo "start $(date +%s.%N)" | tee -a $d/slow.log; sleep 3; echo "end $(date +%s.%N)" | tee -a $d/slow.log';
// its lines go to nap.log and to its output: a run its timer starts every 15 s, 6 s long
const NAP = 'd=$(dirname "$DATABASE_PATH"); echo "start $(date +%s.%N)" | tee -a $d/nap.log; sleep 6; echo "end $(date +%s.%N)" | tee -a $d/nap.log';
const unit = (name: string) => `fdeploy-flaskapp-job-${name}`;

describe("scheduled jobs: timers in the live release, fdeploy jobs", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;

  function fdeploy(words: string[], rest: string[] = []): RunResult {
    const r = spawnSync("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...words, "--stack", stack.name,
      "--config-file", stack.configFile, ...rest], { cwd: PROJECT_DIR, env: stack.env, encoding: "utf8", input: "" });
    const stdout = r.stdout ?? "", stderr = r.stderr ?? "";
    return { status: r.status ?? -1, stdout, stderr, output: stdout + stderr };
  }
  function fdeployAsync(words: string[], rest: string[] = []): Promise<RunResult> {
    return new Promise((resolve) => {
      const c = spawn("bash", [path.join(PROJECT_DIR, "cli/fdeploy"), ...words, "--stack", stack.name,
        "--config-file", stack.configFile, ...rest], { cwd: PROJECT_DIR, env: stack.env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "", stderr = "";
      c.stdout.on("data", (d) => (stdout += d));
      c.stderr.on("data", (d) => (stderr += d));
      c.on("close", (status) => resolve({ status: status ?? -1, stdout, stderr, output: stdout + stderr }));
    });
  }
  // slow.log: a line per start and per end of a run of `slow`, in order ("start|end <unix time>")
  const slowLog = (job = "slow") => server.ssh(`cat /srv/flaskapp/shared/db/${job}.log`).trim().split("\n").map((l) => {
    const [word, t] = l.split(" ");
    return { word, t };
  });
  function ticks(): { t: number; user: string; greeting: string; release: string; code: string; secret: string }[] {
    return server.ssh(`cat ${TICKS} 2>/dev/null || true`).split("\n").filter((l) => l.startsWith("tick ")).map((l) => {
      const f = Object.fromEntries(l.slice(5).split(/ (?=\w+=)/).map((kv) => kv.split(/=(.*)/s).slice(0, 2)));
      return { t: Number(f.t), user: f.user, greeting: f.greeting, release: f.release, code: f.code, secret: f.secret };
    });
  }
  async function waitForTick(pred: (t: ReturnType<typeof ticks>[number]) => boolean, seconds = 25): Promise<ReturnType<typeof ticks>[number]> {
    for (let i = 0; i < seconds; i++) {
      const hit = ticks().find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.fail(`no matching tick in ${seconds}s:\n${server.ssh(`cat ${TICKS} 2>/dev/null; journalctl -u ${unit("tick")} -n 20 --no-pager || true`)}`);
  }
  function up(): RunResult {
    const r = stack.up();
    assert.strictEqual(r.status, 0, r.output);
    return r;
  }
  const now = () => Number(server.ssh("date +%s"));

  before(() => {
    ({ server, stack, app } = deployFresh("jobs", 161, {
      "env.APP_GREETING": GREETING,
      "jobs.tick.schedule": "*:*:0/5", "jobs.tick.command": TICK,
      "jobs.fail.schedule": "yearly", "jobs.fail.command": "echo boom from $RELEASE_ID; exit 3",
      // due every 2 s, takes 3 s: its runs must never overlap
      "jobs.slow.schedule": "*:*:0/2", "jobs.slow.command": SLOW,
      "jobs.nap.schedule": "*:*:0/15", "jobs.nap.command": NAP,
    }));
  });
  after(() => stack?.remove());

  it("a job runs on its schedule in the live release, as the app user, with the app's environment, sandboxed", async () => {
    const release = stack.outputs().releaseId;
    const tick = await waitForTick((t) => t.release === release);
    assert.strictEqual(tick.user, "flaskapp");
    assert.strictEqual(tick.greeting, GREETING);
    assert.strictEqual(tick.secret, "set");           // secrets reach it (the line says only "set")
    assert.strictEqual(tick.code, "none");
    assert.match(server.ssh(`journalctl -u ${unit("tick")}.service --no-pager -o cat`), /^tick t=\d+ user=flaskapp /m);
    // the same sandbox as the app's slots: every job unit (and the slots') scores <= 2.5
    assertUnitExposures(server, "flaskapp", "jobs.test.ts");
    // never two runs at once: `slow` is due every 2 s and takes 3 s, its runs alternate start/end
    await new Promise((r) => setTimeout(r, 8000));
    const slow = server.ssh("cat /srv/flaskapp/shared/db/slow.log").trim().split("\n").map((l) => l.split(" ")[0]);
    assert.ok(slow.filter((w) => w === "start").length >= 2, slow.join(" "));
    slow.forEach((w, i) => assert.strictEqual(w, i % 2 ? "end" : "start", `overlapping runs: ${slow.join(" ")}`));
  });

  it("fdeploy jobs lists schedule, last and next run; --json parses; jobs run runs one now and reports failure", () => {
    // (every 5 s a tick runs for a moment, and its timer has no next run until it is done: list when it is not running)
    const settled = /^tick\s+\*:\*:0\/5\s+\S+Z success\s+\S+Z\s+echo "tick/m;
    let r = fdeploy(["jobs"]);
    for (let i = 0; i < 5 && !settled.test(r.stdout); i++) r = fdeploy(["jobs"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, /^JOB\s+SCHEDULE\s+LAST RUN\s+NEXT RUN\s+COMMAND/m);
    assert.match(r.stdout, /^tick\s+\*:\*:0\/5\s+\S+Z success\s+\S+Z\s+echo "tick/m);
    r = fdeploy(["jobs"], ["--json"]);
    const tickRunning = (out: string) => {
      const t = JSON.parse(out).find((j: any) => j.name === "tick");
      return t?.lastRun?.result === "running" || !t?.nextRun;
    };
    for (let i = 0; i < 5 && r.status === 0 && tickRunning(r.stdout); i++) r = fdeploy(["jobs"], ["--json"]);
    assert.strictEqual(r.status, 0, r.output);
    const list = JSON.parse(r.stdout);
    assert.deepStrictEqual(list.map((j: any) => j.name), ["fail", "nap", "slow", "tick"]);
    const tick = list.find((j: any) => j.name === "tick");
    assert.strictEqual(tick.schedule, "*:*:0/5");
    assert.strictEqual(tick.command, TICK);
    assert.strictEqual(tick.lastRun.result, "success");
    assert.strictEqual(tick.lastRun.exitStatus, 0);
    const next = Date.parse(tick.nextRun) / 1000;
    assert.ok(next > Date.parse(tick.lastRun.started) / 1000 && next - now() <= 6, `next run ${tick.nextRun}`);
    const fail = list.find((j: any) => j.name === "fail");
    assert.strictEqual(fail.lastRun, null);
    assert.match(fail.nextRun, /^\d{4}-01-01T00:00:00Z$/);

    r = fdeploy(["jobs", "run", "fail"]);
    assert.strictEqual(r.status, 1, r.output);
    assert.match(r.stdout, /^boom from [0-9a-f]{12}$/m);
    assert.match(r.stdout, /job fail: \S+ failed \(exit 3\)/);
    const failed = JSON.parse(fdeploy(["jobs"], ["--json"]).stdout).find((j: any) => j.name === "fail");
    assert.strictEqual(failed.lastRun.result, "failed");
    assert.strictEqual(failed.lastRun.exitStatus, 3);

    const asked = now();
    r = fdeploy(["jobs", "run", "tick"], ["--json"]);
    assert.strictEqual(r.status, 0, r.output);
    // its own run's line, one (the timer's runs every 5 s are not its own)
    assert.strictEqual(r.stderr.match(/^tick t=\d+ user=flaskapp /gm)?.length, 1, r.stderr);
    assert.strictEqual(JSON.parse(r.stdout).lastRun.result, "success");
    assert.ok(Date.parse(JSON.parse(r.stdout).lastRun.started) / 1000 >= asked, r.stdout);
    assert.ok(Number(/^tick t=(\d+) /m.exec(r.stderr)![1]) >= asked, r.stderr);

    r = fdeploy(["jobs", "run", "nope"]);
    assert.notStrictEqual(r.status, 0);
    assert.match(r.output, /no job 'nope' on this server \(its jobs: fail nap slow tick\)/);
  });

  it("jobs run while a run of the job is going on: waits for that run to end, then runs its own and reports it", async () => {
    const U = `${unit("slow")}.service`;
    // a run of `slow` going on, held there: its `sleep 3` stopped (SIGSTOP) until the test lets it go on
    const [held, heldInvocation] = server.ssh(`U=${U}; systemctl start --no-block $U
      for i in $(seq 200); do
        if [ "$(systemctl show -p ActiveState --value $U)" = activating ] &&
           p=$(pgrep -P "$(systemctl show -p MainPID --value $U)" -x sleep) && kill -STOP $p 2>/dev/null && sleep 0.2 &&
           grep -q '^State:.*stopped' /proc/$p/status && [ "$(systemctl show -p ActiveState --value $U)" = activating ]; then
          echo "$p $(systemctl show -p InvocationID --value $U)"; exit 0
        fi
        sleep 0.05
      done; exit 1`).trim().split(" ");
    let r: RunResult;
    let heldStart: { word: string; t: string };
    try {
      heldStart = slowLog().pop()!;
      assert.strictEqual(heldStart.word, "start");
      const pending = fdeployAsync(["jobs", "run", "slow"], ["--json"]);
      // jobs run is on the server, in its systemctl start, while the held run is still going on
      for (let i = 0; !server.ssh(`pgrep -af 'systemctl [s]tart.* ${U}' || true`).trim(); i++) {
        assert.ok(i < 600, "fdeploy jobs run slow never got to systemctl start on the server");
        await new Promise((res) => setTimeout(res, 100));
      }
      await new Promise((res) => setTimeout(res, 1000));
      assert.strictEqual(server.ssh(`systemctl show -p ActiveState,InvocationID --value ${U}`).trim().split("\n").join(" "),
        `activating ${heldInvocation}`);
      server.ssh(`kill -CONT ${held}`);
      r = await pending;
    } finally {
      server.trySsh(`kill -CONT ${held}`);
    }
    assert.strictEqual(r.status, 0, r.output);
    // never two runs at once: slow.log alternates start, end
    const log = slowLog();
    log.forEach((l, i) => assert.strictEqual(l.word, i % 2 ? "end" : "start", `overlapping runs: ${JSON.stringify(log)}`));
    const h = log.findIndex((l) => l.word === "start" && l.t === heldStart!.t);
    const heldEnd = log[h + 1];
    assert.ok(heldEnd, `the held run never ended: ${JSON.stringify(log)}`);
    // its output: one run's start and end — its own, which started after the held run had ended
    const starts = [...r.stderr.matchAll(/^start (\S+)$/gm)].map((m) => m[1]);
    const ends = [...r.stderr.matchAll(/^end (\S+)$/gm)].map((m) => m[1]);
    assert.strictEqual(starts.length, 1, r.stderr);
    assert.strictEqual(ends.length, 1, r.stderr);
    assert.ok(Number(starts[0]) > Number(heldEnd.t), `its run started at ${starts[0]}, before the held run ended (${heldEnd.t})\n${r.stderr}`);
    const own = log.findIndex((l) => l.word === "start" && l.t === starts[0]);
    assert.ok(own > h, `its run is not in slow.log after the held one: ${JSON.stringify(log)}`);
    assert.strictEqual(log[own + 1]?.t, ends[0]);
    assert.match(r.stderr, /job slow is running now \(started by its timer\): waiting for that run/);
    // and the result is that run's: not the held one (invocation), started after it, a success
    const result = JSON.parse(r.stdout);
    assert.strictEqual(result.lastRun.result, "success", r.stdout);
    assert.strictEqual(result.lastRun.exitStatus, 0);
    assert.notStrictEqual(result.lastRun.invocation, heldInvocation);
    const started = Date.parse(result.lastRun.started) / 1000;
    assert.ok(started >= Math.floor(Number(heldEnd.t)) && started <= Number(starts[0]), r.stdout);
    assert.ok(Date.parse(result.lastRun.ended) / 1000 >= Math.floor(Number(ends[0])), r.stdout);
  });

  it("jobs run while a run its timer started is going on: both run, its own after the timer's, and it reports its own (issue 24)", async () => {
    const U = `${unit("nap")}.service`;
    // a run of `nap` its timer has just begun (none going on, then one that has written its start
    // line), held going on: its `sleep 6` stopped (SIGSTOP) until the request is on the server
    const [timerInvocation, timerStart, held] = server.ssh(`U=${U} L=/srv/flaskapp/shared/db/nap.log
      for i in $(seq 400); do [ "$(systemctl show -p ActiveState --value $U)" = activating ] || break; sleep 0.1; done
      n=$(cat $L 2>/dev/null | wc -l)
      for i in $(seq 600); do
        if [ "$(systemctl show -p ActiveState --value $U)" = activating ] && [ "$(wc -l <$L)" -gt "$n" ] && tail -n 1 $L | grep -q '^start ' &&
           p=$(pgrep -P "$(systemctl show -p MainPID --value $U)" -x sleep) && kill -STOP $p; then
          echo "$(systemctl show -p InvocationID --value $U) $(tail -n 1 $L | cut -d' ' -f2) $p"; exit 0
        fi
        sleep 0.05
      done; exit 1`).trim().split(" ");
    let r: RunResult;
    try {
      const pending = fdeployAsync(["jobs", "run", "nap"], ["--json"]);
      for (let i = 0; !server.ssh(`pgrep -af 'systemctl [s]tart.* ${U}' || true`).trim(); i++) {
        assert.ok(i < 600, "fdeploy jobs run nap never got to systemctl start on the server");
        await new Promise((res) => setTimeout(res, 100));
      }
      await new Promise((res) => setTimeout(res, 1000));
      assert.strictEqual(server.ssh(`systemctl show -p ActiveState,InvocationID --value ${U}`).trim().split("\n").join(" "),
        `activating ${timerInvocation}`);
      server.ssh(`kill -CONT ${held}`);
      r = await pending;
    } finally {
      server.trySsh(`kill -CONT ${held}`);
    }
    assert.strictEqual(r.status, 0, r.output);
    // both runs happened, one after the other: nap.log alternates start, end
    const log = slowLog("nap");
    log.forEach((l, i) => assert.strictEqual(l.word, i % 2 ? "end" : "start", `overlapping runs: ${JSON.stringify(log)}`));
    const starts = [...r.stderr.matchAll(/^start (\S+)$/gm)].map((m) => m[1]);
    const ends = [...r.stderr.matchAll(/^end (\S+)$/gm)].map((m) => m[1]);
    assert.strictEqual(starts.length, 1, `its output is one run's: ${r.stderr} (the timer's run: ${timerStart})`);
    assert.strictEqual(ends.length, 1, `its output is one run's: ${r.stderr}`);
    const own = log.findIndex((l) => l.t === starts[0]);
    assert.ok(own >= 2 && log[own + 1]?.t === ends[0], `its run is not in nap.log: ${JSON.stringify(log)}`);
    // the run before its own is the timer's, going on at the request; its own began after that one ended
    const timerEnd = log[own - 1];
    assert.strictEqual(log[own - 2]?.t, timerStart, `the run before its own is not the timer's: ${JSON.stringify(log)}`);
    assert.ok(Number(starts[0]) > Number(timerEnd.t), `its run began before the timer's had ended: ${JSON.stringify(log)}`);
    // and the result is that run's: not the timer's (invocation), started after it, a success
    const result = JSON.parse(r.stdout);
    assert.strictEqual(result.lastRun.result, "success", r.stdout);
    assert.notStrictEqual(result.lastRun.invocation, timerInvocation, "it reported the timer's run");
    assert.ok(Date.parse(result.lastRun.started) / 1000 >= Math.floor(Number(timerEnd.t)), r.stdout);
    assert.ok(Date.parse(result.lastRun.ended) / 1000 >= Math.floor(Number(ends[0])), r.stdout);
    assert.match(r.stderr, /job nap is running now \(started by its timer\): waiting for that run/);
  });

  it("a bad schedule is refused, naming the setting, before anything on the server changes", () => {
    const before = server.ssh("readlink /srv/flaskapp/current; ls /srv/flaskapp/releases; md5sum /etc/systemd/system/fdeploy-flaskapp-job-*");
    app.edit("wsgi.py", (s) => s + "\n# jobs-marker-refused\n");   // a code change rides along
    stack.setConfig("jobs.fail.schedule", "every other tuesday");
    try {
      const r = stack.up();
      assert.notStrictEqual(r.status, 0, r.output);
      assert.match(r.output, /flask-deploy:jobs\.fail\.schedule: 'every other tuesday' is not a systemd calendar expression/);
      assert.match(r.output, /nothing on the server was changed/);
      assert.strictEqual(server.ssh("readlink /srv/flaskapp/current; ls /srv/flaskapp/releases; md5sum /etc/systemd/system/fdeploy-flaskapp-job-*"), before);
    } finally {
      stack.setConfig("jobs.fail.schedule", "yearly");
      app.edit("wsgi.py", (s) => s.replace("\n# jobs-marker-refused\n", ""));
    }
  });

  it("after a code-changing deploy, the next run runs the new code (never the old)", async () => {
    const old = stack.outputs().releaseId;
    app.edit("wsgi.py", (s) => s + "\n# jobs-marker-v2\n");
    up();
    const done = now();
    const release = stack.outputs().releaseId;
    assert.notStrictEqual(release, old);
    const tick = await waitForTick((t) => t.release === release);
    assert.strictEqual(tick.code, "jobs-marker-v2");
    assert.strictEqual(server.ssh("readlink -f /srv/flaskapp/current").trim(), `/srv/flaskapp/releases/${release}`);
    // every run that started after the deploy ran the new release
    for (const t of ticks().filter((t) => t.t > done)) assert.deepStrictEqual([t.release, t.code], [release, "jobs-marker-v2"]);
  });

  it("through a sudo SSH user: deploy, fdeploy status, jobs, jobs run, logs, exec", () => {
    addSudoUser(server);
    stack.setConfig("server.user", "deploy");
    up();
    assert.match(server.ssh("ls /home/deploy/.fdeploy/flaskapp"), /scripts-[0-9a-f]{12}/);
    const release = stack.outputs().releaseId;
    let r = fdeploy(["status"], ["--json"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(JSON.parse(r.stdout).release, release);
    r = fdeploy(["jobs"], ["--json"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.deepStrictEqual(JSON.parse(r.stdout).map((j: any) => j.name), ["fail", "nap", "slow", "tick"]);
    const asked = now();
    r = fdeploy(["jobs", "run", "tick"]);
    assert.strictEqual(r.status, 0, r.output);
    // its own run (a run of the timer's going on at the time is waited for, not reported)
    assert.match(r.stdout, new RegExp(`^tick t=\\d+ user=flaskapp greeting=${GREETING} release=${release} `, "m"));
    assert.strictEqual(r.stdout.match(/^tick t=/gm)?.length, 1, r.stdout);
    assert.ok(Number(/^tick t=(\d+) /m.exec(r.stdout)![1]) >= asked, r.stdout);
    assert.match(r.stdout, /^job tick: \S+Z success, ended \S+Z$/m);
    r = fdeploy(["logs"], ["-n", "5"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, / gunicorn\[\d+\]: /);
    // (--grep: the timer fires every few seconds, so systemd's own lines could fill the last 3)
    r = fdeploy(["logs"], ["--job", "tick", "--grep", "tick t=", "-n", "3"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, / fdeploy-flaskapp-job-tick\[\d+\]: tick t=\d+ user=flaskapp /);
    r = fdeploy(["exec"], ["--", "sh", "-c", 'echo "$(id -un) $APP_GREETING $RELEASE_ID"']);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout.trim(), new RegExp(`^flaskapp_[12] ${GREETING} ${release}$`));   // the live slot's user
  });

  it("a job removed from config loses its timer; removing the last one removes every job unit", () => {
    stack.mustRun(["config", "rm", "--path", "jobs.fail"]);
    stack.mustRun(["config", "rm", "--path", "jobs.slow"]);
    stack.mustRun(["config", "rm", "--path", "jobs.nap"]);
    let r = up();
    assert.deepStrictEqual(changed(r.output).filter((n) => n.startsWith("job")), ["job-schedules-check", "jobs-timers"]);
    for (const gone of ["fail", "slow", "nap"]) assert.strictEqual(server.trySsh(`test -e /etc/systemd/system/${unit(gone)}.timer`).status, 1);
    assert.strictEqual(server.ssh(`systemctl is-active ${unit("tick")}.timer`).trim(), "active");

    stack.mustRun(["config", "rm", "jobs"]);
    r = stack.preview();
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /- +command:remote:Command +app-jobs-timers +delete/);
    r = up();
    assert.deepStrictEqual(changed(r.output), ["job-schedules-check", "jobs-timers"]);
    assert.strictEqual(server.ssh("ls /etc/systemd/system | grep -c fdeploy-flaskapp-job- || true").trim(), "0");
    assert.strictEqual(server.ssh(`systemctl list-timers --all --no-legend | grep -c ${unit("")} || true`).trim(), "0");
    r = fdeploy(["jobs"]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.stdout, /no scheduled jobs/);
    // and with no jobs, nothing left to do
    assert.deepStrictEqual(changed(up().output), []);
  });

  it("pulumi destroy removes the job units too (and keeps the data)", () => {
    stack.setConfig("jobs.tick.schedule", "*:*:0/5");
    stack.setConfig("jobs.tick.command", TICK);
    up();
    assert.strictEqual(server.ssh(`systemctl is-active ${unit("tick")}.timer`).trim(), "active");
    const r = stack.destroy();
    assert.strictEqual(r.status, 0, r.output);
    assert.strictEqual(server.ssh("ls /etc/systemd/system | grep -c fdeploy-flaskapp-job- || true").trim(), "0");
    assert.strictEqual(server.trySsh(`systemctl is-active ${unit("tick")}.timer`).stdout.trim(), "inactive");
    assert.strictEqual(server.trySsh(`test -f ${TICKS}`).status, 0);
  });
});
