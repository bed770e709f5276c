// Strategy canary without a server: the activation parameters and preview line a config turns
// into (the gate on nginx upstream-log lines: the agent's canary-gate, tests/python/test_agent_canary.py).
import * as assert from "assert";
import { canaryParams, describeCanary } from "../../components/activation";
import { canarySettings, parseConfig } from "../../components/config";
import { PROJECT_DIR, rawConfig } from "./helpers";

describe("strategy canary", () => {
  it("turns its settings into activate.sh parameters and a preview line", () => {
    const c = canarySettings(parseConfig(rawConfig({ strategy: "canary", canary: { steps: "10,50,100", stepSeconds: "30" } }), PROJECT_DIR))!;
    assert.deepStrictEqual(canaryParams(c), {
      CANARY_STEPS: "10,50,100", CANARY_STEP_SECONDS: 30, CANARY_MAX_ERROR_RATE: "0.01", CANARY_MAX_P95_MS: 1000,
      CANARY_MIN_REQUESTS: 20, CANARY_LOW_TRAFFIC: "wait", CANARY_MAX_WAIT_SECONDS: 300,
    });
    assert.match(describeCanary(c), /^strategy canary: 10 % → 50 % → 100 % of requests to the new release, 30 s per step; each step needs ≥ 20 requests on it \(else wait up to 300 s more, then fail\), a 5xx share ≤ 0\.01 and p95 ≤ 1000 ms/);
  });
});
