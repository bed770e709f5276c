// The config schema: valid input gets defaults; every kind of bad input is refused with a message
// that names the key and the expected form.
import * as assert from "assert";
import { canarySettings, ConfigError, parseConfig } from "../../components/config";
import { errorOf, HOST_KEY, PROJECT_DIR, rawConfig, refusal, tempKeyFile } from "./helpers";

describe("config schema", () => {
  it("accepts a valid config and fills in defaults", () => {
    const cfg = parseConfig(rawConfig(), PROJECT_DIR);
    assert.strictEqual(cfg.server.port, 22);
    assert.strictEqual(cfg.workers, 3);
    assert.strictEqual(cfg.strategy, "restart");
    assert.strictEqual(cfg.appDir, "app");
    assert.strictEqual(cfg.appModule, "wsgi:app");
    assert.deepStrictEqual(cfg.secrets, { SECRET_KEY: "s3cr3t-value" });
  });

  it("keepBackupsBytes: unset by default (the server's budget); sizes in decimal or binary units, or bytes", () => {
    assert.strictEqual(parseConfig(rawConfig(), PROJECT_DIR).keepBackupsBytes, undefined);
    for (const [v, bytes] of [["2GB", 2e9], ["500 MB", 5e8], ["750MiB", 750 * 2 ** 20], ["1.5gb", 1.5e9], ["3000000", 3e6], [3000000, 3e6]] as [string | number, number][]) {
      assert.strictEqual(parseConfig(rawConfig({ keepBackupsBytes: v }), PROJECT_DIR).keepBackupsBytes, bytes, String(v));
    }
  });

  it("strategy canary: defaults, and steps given as one text", () => {
    const cfg = parseConfig(rawConfig({ strategy: "canary" }), PROJECT_DIR);
    assert.deepStrictEqual(canarySettings(cfg), {
      steps: [5, 25, 50, 100], stepSeconds: 60, maxErrorRate: 0.01, maxP95Ms: 1000, minRequests: 20, lowTraffic: "wait", maxWaitSeconds: 300,
    });
    const c = parseConfig(rawConfig({ strategy: "canary", canary: { steps: "[10, 100]", stepSeconds: "5", maxErrorRate: "0.05", lowTraffic: "pass" } }), PROJECT_DIR);
    assert.deepStrictEqual(canarySettings(c)!.steps, [10, 100]);
    assert.strictEqual(canarySettings(c)!.stepSeconds, 5);
    assert.strictEqual(canarySettings(c)!.maxErrorRate, 0.05);
    assert.strictEqual(canarySettings(parseConfig(rawConfig(), PROJECT_DIR)), undefined);
  });

  it("reads the server from .env settings when the stack has none", () => {
    const key = tempKeyFile();
    const cfg = parseConfig(rawConfig({ server: undefined }), PROJECT_DIR, {
      FDEPLOY_SERVER_HOST: "10.213.0.11", FDEPLOY_SERVER_KEY_PATH: key, FDEPLOY_SERVER_HOST_KEY: HOST_KEY, FDEPLOY_SERVER_PORT: "2222",
    });
    assert.strictEqual(cfg.server.host, "10.213.0.11");
    assert.strictEqual(cfg.server.port, 2222);
  });

  it("defaults to blue-green on prod stacks and restart elsewhere; an explicit strategy wins", () => {
    assert.strictEqual(parseConfig(rawConfig(), PROJECT_DIR, {}, "prod").strategy, "blue-green");
    assert.strictEqual(parseConfig(rawConfig(), PROJECT_DIR, {}, "dev").strategy, "restart");
    assert.strictEqual(parseConfig(rawConfig({ strategy: "rolling" }), PROJECT_DIR, {}, "prod").strategy, "rolling");
  });

  it("server.hostKey takes what ssh-keyscan prints (the host name dropped); a key of another host is refused, naming both", () => {
    const scanned = (host: string) => parseConfig(rawConfig({ server: { host: "app.example.com", hostKey: `${host} ${HOST_KEY}` } }), PROJECT_DIR).server.hostKey;
    assert.strictEqual(scanned("app.example.com"), HOST_KEY);
    assert.strictEqual(scanned("[app.example.com]:2222"), HOST_KEY);
    assert.strictEqual(scanned("app.example.com,203.0.113.10"), HOST_KEY);
    assert.strictEqual(parseConfig(rawConfig({ server: { host: "app.example.com", hostKey: `${HOST_KEY} root@box` } }), PROJECT_DIR).server.hostKey,
      `${HOST_KEY} root@box`, "a key with a comment is a key, not a scanned line");
    assert.match(errorOf({ server: { host: "app.example.com", hostKey: `other.example.com ${HOST_KEY}` } }),
      /flask-deploy:server\.hostKey: the key was scanned from other\.example\.com, not from app\.example\.com .*ssh-keyscan -t ed25519 app\.example\.com/);
  });

  it("timeouts: defaults build 30m, releaseCommands 30m, default 5m, lockWait 120s, in seconds; a bad value names the key and the form", () => {
    assert.deepStrictEqual(parseConfig(rawConfig(), PROJECT_DIR).timeouts, { build: 1800, releaseCommands: 1800, default: 300, lockWait: 120 });
    assert.deepStrictEqual(parseConfig(rawConfig({ timeouts: { releaseCommands: "15s", default: "2h", lockWait: "10m" } }), PROJECT_DIR).timeouts,
      { build: 1800, releaseCommands: 15, default: 7200, lockWait: 600 });
    assert.match(errorOf({ timeouts: { build: "30" } }), /flask-deploy:timeouts\.build: expected a duration like 90s, 30m or 2h/);
    assert.match(errorOf({ timeouts: { default: "5s" } }), /flask-deploy:timeouts\.default: expected a duration from 10s to 24h/);
    assert.match(errorOf({ timeouts: { releaseCommand: "1m" } }), /flask-deploy:timeouts\.releaseCommand: unknown setting \(a typo\?\); known: build, releaseCommands, default, lockWait/);
  });

  it("accepts keepDataOnDestroy 'true' (destroy keeps the data anyway)", () => {
    assert.doesNotThrow(() => parseConfig(rawConfig({ keepDataOnDestroy: "true" }), PROJECT_DIR));
  });

  it("keepDataOnDestroy false: the message's commands name this stack and app, in an order that works", () => {
    const said = refusal(() => parseConfig(rawConfig({ keepDataOnDestroy: "false", appName: "shop" }), PROJECT_DIR, {}, "prod"));
    assert.match(said, /Remove this key first \(pulumi config rm --stack prod keepDataOnDestroy\); then, .*npm run purge -- --stack prod --confirm shop$/m);
    assert.doesNotMatch(said, /<stack>|<appName>/);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp, string[]?]> = [
    ["missing server", { server: undefined }, /flask-deploy:server: missing/],
    ["missing host", { server: { hostKey: HOST_KEY } }, /server\.host: .*expected/i],
    ["bad port", { server: { host: "10.0.0.1", port: "99999", hostKey: HOST_KEY } }, /server\.port/],
    ["port not a number", { server: { host: "10.0.0.1", port: "ssh", hostKey: HOST_KEY } }, /server\.port/],
    ["host with a space", { server: { host: "a b", hostKey: HOST_KEY } }, /server\.host: expected a host name/],
    ["missing host key", { server: { host: "10.0.0.1" } }, /server\.hostKey/],
    ["malformed host key", { server: { host: "10.0.0.1", hostKey: "AAAA" } }, /server\.hostKey: expected the server's public host key/],
    ["ssh-rsa host key (official plugin offers only SHA-1 for it)", { server: { host: "10.0.0.1", hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7" } }, /server\.hostKey: an ssh-rsa host key cannot be pinned.*ssh-keyscan -t ed25519/],
    ["appName root (would run the app as root)", { appName: "root" }, /flask-deploy:appName: names an account the system or another service uses/],
    ["appName www-data (nginx's account)", { appName: "www-data" }, /flask-deploy:appName: names an account/],
    ["appName systemd-network", { appName: "systemd-network" }, /flask-deploy:appName: names an account/],
    ["unknown server key", { server: { host: "10.0.0.1", hostKey: HOST_KEY, pasword: "x" } }, /server\.pasword: unknown setting/],
    ["server_name with spaces only", { serverName: "   " }, /serverName: expected '_' or space-separated host names/],
    ["server_name with a semicolon", { serverName: "example.com; return 301" }, /serverName: expected/],
    ["server_name with braces", { serverName: "example.com}" }, /serverName: expected/],
    ["server_name with a newline", { serverName: "example.com\nlisten 81" }, /serverName: expected/],
    ["negative workers", { workers: "-1" }, /workers/],
    ["huge workers", { workers: "100000" }, /workers/],
    ["fractional workers", { workers: "2.5" }, /workers/],
    ["unknown strategy", { strategy: "blue_green" }, /strategy: expected one of: restart, rolling, blue-green, canary/],
    ["canary steps not ending at 100", { strategy: "canary", canary: { steps: [5, 50] } }, /canary\.steps: expected increasing percentages ending at 100/],
    ["canary steps not increasing", { strategy: "canary", canary: { steps: "[50, 25, 100]" } }, /canary\.steps: expected increasing percentages ending at 100/],
    ["canary step over 100", { strategy: "canary", canary: { steps: [5, 150] } }, /canary\.steps\.1: expected percentages 1\.\.100/],
    ["canary step not a number", { strategy: "canary", canary: { steps: "5,x,100" } }, /canary\.steps\.1: /],
    ["canary error rate over 1", { strategy: "canary", canary: { maxErrorRate: "5" } }, /canary\.maxErrorRate: /],
    ["canary lowTraffic unknown", { strategy: "canary", canary: { lowTraffic: "skip" } }, /canary\.lowTraffic: expected one of: wait, fail, pass/],
    ["canary typo", { strategy: "canary", canary: { stepSecond: "5" } }, /canary\.stepSecond: unknown setting \(a typo\?\); known: steps, stepSeconds/],
    ["canary settings with another strategy", { strategy: "blue-green", canary: { stepSeconds: "5" } }, /flask-deploy:canary: set, but strategy is blue-green/],
    ["appDir with ..", { appDir: "../elsewhere" }, /appDir: expected a relative path inside the project, without '\.\.'/],
    ["absolute appDir", { appDir: "/etc" }, /appDir: expected a relative path/],
    ["appDir without requirements.txt", { appDir: "components" }, /appDir: 'components' has no requirements\.txt/],
    ["appDir that does not exist", { appDir: "nope" }, /appDir: 'nope' is not a directory/],
    ["app module missing", { appModule: "missing:app" }, /appModule: 'missing:app' not found/],
    ["malformed app module", { appModule: "wsgi:app.attr" }, /appModule: expected module:name, module:factory\(\)/],
    ["secrets given as plain config", {}, /secrets: must be set as a secret/, []],
    ["typo in a key", { wrokers: "2" }, /flask-deploy:wrokers: unknown setting \(a typo\?\)/],
    ["bad env name", { env: { "bad-name": "x" } }, /env\.bad-name: expected an environment variable name/],
    ["an env value with a newline", { env: { APP_GREETING: "a\nb" } }, /env\.APP_GREETING: expected a single-line value/],
    ["a secret with a newline", { secrets: { SECRET_KEY: "a\nb" } }, /secrets\.SECRET_KEY: expected a single-line value/],
    ["reserved env name", { env: { DATABASE_PATH: "/tmp/x" } }, /env\.DATABASE_PATH: is set by the deploy itself/],
    ["bad app name", { appName: "My App" }, /appName: expected 2-31 chars/],
    ["bad health path", { healthPath: "health" }, /healthPath: expected a URL path/],
    ["bad body size", { clientMaxBodySize: "lots" }, /clientMaxBodySize: expected an nginx size/],
    ["a backup budget without a size", { keepBackupsBytes: "lots" }, /flask-deploy:keepBackupsBytes: expected a size like 2GB, 500MB or 750MiB, or a byte count/],
    ["a backup budget below 1MB", { keepBackupsBytes: "500kB" }, /keepBackupsBytes: expected a size .* of at least 1MB/],
    ["a backup budget with an unknown unit", { keepBackupsBytes: "2 GBs" }, /keepBackupsBytes: expected a size/],
    ["bad boolean", { keepDataOnDestroy: "maybe" }, /keepDataOnDestroy: expected true or false/],
    ["keepDataOnDestroy false (destroy never deletes data)", { keepDataOnDestroy: "false" }, /keepDataOnDestroy: false is no longer supported: pulumi destroy always keeps the database[\s\S]*npm run purge/],
    ["missing key file", { server: { host: "10.0.0.1", hostKey: HOST_KEY, privateKeyPath: "/nonexistent/key" } }, /server\.privateKeyPath: '\/nonexistent\/key' does not exist/],
  ];
  for (const [what, over, re, secret] of bad) {
    it(`refuses ${what}`, () => {
      assert.match(errorOf(over, secret), re);
    });
  }

  it("lists every problem at once", () => {
    const msg = errorOf({ workers: "0", strategy: "x" });
    assert.match(msg, /workers/);
    assert.match(msg, /strategy/);
  });
});

describe("config: scheduled jobs", () => {
  it("has none by default and takes name -> {schedule, command}", () => {
    assert.deepStrictEqual(parseConfig(rawConfig(), PROJECT_DIR).jobs, {});
    const cfg = parseConfig(rawConfig({ jobs: { cleanup: { schedule: " *-*-* 03:00:00 ", command: "flask cleanup --days 30" } } }), PROJECT_DIR);
    assert.deepStrictEqual(cfg.jobs, { cleanup: { schedule: "*-*-* 03:00:00", command: "flask cleanup --days 30" } });
  });
  for (const [what, jobs, re] of [
    ["a bad job name", { "Bad Name": { schedule: "hourly", command: "true" } }, /jobs\.Bad Name: expected a job name/],
    ["an empty schedule", { a: { schedule: " ", command: "true" } }, /jobs\.a\.schedule: expected a systemd calendar expression/],
    ["a schedule with shell characters", { a: { schedule: "hourly; rm -rf /", command: "true" } }, /jobs\.a\.schedule: expected a systemd calendar/],
    ["an empty command", { a: { schedule: "hourly", command: "  " } }, /jobs\.a\.command: expected a command/],
    ["a multi-line command", { a: { schedule: "hourly", command: "a\nb" } }, /jobs\.a\.command: expected a one-line command/],
    ["a missing command", { a: { schedule: "hourly" } }, /jobs\.a\.command/],
    ["an unknown job key", { a: { schedule: "hourly", command: "true", user: "root" } }, /jobs\.a\.user: unknown setting.*known: schedule, command/],
  ] as [string, unknown, RegExp][]) {
    it(`refuses ${what}`, () => {
      assert.match(errorOf({ jobs }), re);
    });
  }
});

describe("the program's errors as Pulumi prints them", () => {
  // Pulumi's program runner reports every program error through defaultErrorMessage (util.inspect of
  // the error). On Node.js 20.20 that spins ~14 s on a stack with node_modules frames before the
  // refusal is printed; an error without a stack is printed as its message at once.
  const { defaultErrorMessage } = require("@pulumi/pulumi/cmd/run/error");
  const { RunError } = require("@pulumi/pulumi/errors");
  const { program } = require("../../components/program");

  it("a refused config reaches Pulumi's runner as its message alone, no stack to format", async () => {
    // thrown inside the program, as index.ts loads the stack's config
    const err = await program(async () => parseConfig(rawConfig({ workers: "lots" }), PROJECT_DIR))().catch((e: any) => e);
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    assert.strictEqual(err.stack, undefined);
    assert.strictEqual(defaultErrorMessage(err), err.message);
    assert.match(err.message, /flask-deploy:workers/);
  });

  it("a refusal: its message; a bug: its stack's text (where it happened), with no stack left to format", async () => {
    const refused = await program(async () => { throw new RunError("flask-deploy:x: expected y"); })().catch((e: any) => e);
    assert.strictEqual(defaultErrorMessage(refused), "flask-deploy:x: expected y");
    function buggyStep(): never { throw new TypeError("cannot read x"); }
    const bug = await program(async () => buggyStep())().catch((e: any) => e);
    assert.ok(bug instanceof TypeError);
    assert.strictEqual(bug.stack, undefined);
    assert.match(defaultErrorMessage(bug), /TypeError: cannot read x\n\s+at buggyStep/);
  });
});
