// Mocha root hooks for e2e tests: whatever happens in a test, every test server is stopped.
import { stopAll } from "../servers";

export const mochaHooks = {
  afterAll(this: Mocha.Context) {
    this.timeout(120000);
    stopAll();
  },
};
