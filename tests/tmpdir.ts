// Temporary folders for tests: all under one folder per test process, removed when the process
// exits (mocha --exit included), so test runs do not pile folders up in the machine's /tmp.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

let root: string | undefined;

/** A new empty folder named PREFIX + random characters, removed when this process exits. */
export function tempDir(prefix: string): string {
  if (!root) {
    const r = (root = fs.mkdtempSync(path.join(os.tmpdir(), "fdeploy-test-")));
    process.on("exit", () => fs.rmSync(r, { recursive: true, force: true }));
  }
  return fs.mkdtempSync(path.join(root, prefix));
}
