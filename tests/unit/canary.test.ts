// Strategy canary without a server: the activation parameters and preview line a config turns
// into, and the gate script (components/scripts/canary.py) on nginx upstream-log lines.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { canaryParams, describeCanary } from "../../components/activation";
import { canarySettings, parseConfig } from "../../components/config";
import { SCRIPTS_DIR } from "../../components/remote-script";
import { PROJECT_DIR, rawConfig } from "./helpers";
import { tempDir } from "../tmpdir";

const OLD = "/run/fdeploy-a/blue.sock";
const NEW = "/run/fdeploy-a/green.sock";

/** canary.py on these log lines: [exit status, its one line]. */
function gate(lines: string[], mode: "final" | "early", opts: { offset?: number; maxErr?: string; maxP95?: string; minReq?: string } = {}): [number, string] {
  const log = path.join(tempDir("canary-"), "upstream.log");
  fs.writeFileSync(log, lines.map((l) => l + "\n").join(""));
  const r = spawnSync("python3", [path.join(SCRIPTS_DIR, "canary.py"), log, String(opts.offset ?? 0), OLD, NEW,
    opts.maxErr ?? "0.1", opts.maxP95 ?? "100", opts.minReq ?? "2", mode], { encoding: "utf8" });
  return [r.status ?? -1, r.stdout.trim()];
}
const line = (status: number, addr: string, seconds: string) => `1733390000.123\t${status}\tunix:${addr}\t${status}\t${seconds}\t${seconds}`;

describe("strategy canary", () => {
  it("turns its settings into activate.sh parameters and a preview line", () => {
    const c = canarySettings(parseConfig(rawConfig({ strategy: "canary", canary: { steps: "10,50,100", stepSeconds: "30" } }), PROJECT_DIR))!;
    assert.deepStrictEqual(canaryParams(c), {
      CANARY_STEPS: "10,50,100", CANARY_STEP_SECONDS: 30, CANARY_MAX_ERROR_RATE: "0.01", CANARY_MAX_P95_MS: 1000,
      CANARY_MIN_REQUESTS: 20, CANARY_LOW_TRAFFIC: "wait", CANARY_MAX_WAIT_SECONDS: 300,
    });
    assert.match(describeCanary(c), /^strategy canary: 10 % → 50 % → 100 % of requests to the new release, 30 s per step; each step needs ≥ 20 requests on it \(else wait up to 300 s more, then fail\), a 5xx share ≤ 0\.01 and p95 ≤ 1000 ms/);
  });

  it("gate: counts each slot's requests, 5xx and p95 from the log; passes a healthy step", () => {
    const [rc, out] = gate([line(200, NEW, "0.010"), line(200, NEW, "0.020"), line(200, OLD, "0.005"), line(200, "/run/fdeploy-a/live.sock", "0.007")], "final");
    assert.strictEqual(rc, 0, out);
    assert.strictEqual(out, "new 2 requests, 0 5xx (0.0 %), p95 20 ms | old 2 requests, 0 5xx (0.0 %), p95 7 ms");
  });

  it("gate: the new release's 5xx share over the limit trips it (3); too few requests (2); a slow p95 (4)", () => {
    assert.strictEqual(gate([line(500, NEW, "0.01"), line(200, NEW, "0.01")], "final")[0], 3);
    assert.strictEqual(gate([line(200, NEW, "0.01")], "final")[0], 2);
    assert.strictEqual(gate([line(200, NEW, "0.5"), line(200, NEW, "0.5")], "final")[0], 4);
    // errors of the old release are its own
    assert.strictEqual(gate([line(500, OLD, "0.01"), line(200, NEW, "0.01"), line(200, NEW, "0.01")], "final")[0], 0);
  });

  it("gate early: trips only on the error share, and only with enough requests", () => {
    assert.strictEqual(gate([line(500, NEW, "0.01")], "early")[0], 0);
    assert.strictEqual(gate([line(500, NEW, "0.01"), line(500, NEW, "0.01")], "early")[0], 3);
    assert.strictEqual(gate([line(200, NEW, "0.5"), line(200, NEW, "0.5")], "early")[0], 0);
  });

  it("gate: the slot that answered is the last one nginx tried; only lines after the step's offset count; no upstream is not counted", () => {
    const retried = `1733390000.5\t200\tunix:${NEW}, unix:${OLD}\t502, 200\t0.000, 0.004\t0.005`;
    const before = line(500, NEW, "0.01");
    const [rc, out] = gate([before, retried, line(200, NEW, "0.01"), line(200, NEW, "0.01"), "1733390000.6\t503\t-\t-\t-\t0.000"], "final",
      { offset: before.length + 1 });
    assert.strictEqual(rc, 0, out);
    assert.match(out, /^new 2 requests, 0 5xx .* \| old 1 requests, 0 5xx \(0\.0 %\), p95 4 ms$/);
  });
});
