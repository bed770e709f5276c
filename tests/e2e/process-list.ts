// Samples a test server's process argument lists during a deploy (did a value reach a command line?).
import { ChildProcess, spawn } from "child_process";
import { TestServer } from "../servers";

/**
 * `ps -eo args` on SERVER every 50 ms, at most SAMPLES times, over one SSH session; stop() ends it and
 * returns every sample. The loop ends on the server too once the session is gone (its sshd parent
 * exited): sshd does not signal a command without a terminal, and ps there still exits 0, so the loop
 * used to run its whole count (2 min of ps every 50 ms, ~0.1 CPU) through the cases after it.
 */
export function watchProcessList(server: TestServer, samples = 2400): { stop(): string } {
  const child: ChildProcess = spawn("ssh", ["-i", server.keyPath, "-o", `UserKnownHostsFile=${server.knownHostsPath}`, "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes", `root@${server.host}`, `for i in $(seq 1 ${samples}); do kill -0 $PPID 2>/dev/null || exit 0; ps -eo args; sleep 0.05; done`],
  { stdio: ["ignore", "pipe", "ignore"] });
  let log = "";
  child.stdout!.on("data", (d) => (log += d));
  return {
    stop() {
      child.kill();
      return log;
    },
  };
}
