// npm run backup -- verify|restore|status --stack <stack> [--timestamp 2026-12-05T07:00:00Z]
//
// The server side of offsite backups (components/scripts/backup.sh), for the stack's server; the
// `fdeploy backup` command wraps it.
//   verify   restores the latest replica to a temporary file on the server, runs PRAGMA
//            integrity_check and compares row counts with the live database (changes nothing)
//   restore  stops the app and replication, restores every database from the replica (to
//            --timestamp, or the latest), keeps the old files aside, starts both again
//   status   replication running, whose the replica is (the lease), each database's lag in
//            transactions and the age of the replica's newest write, the last scheduled drill
import { arg, runOnServer, stackConfig } from "./lib/stack-server";

function main(): number {
  const verb = process.argv[2];
  const stack = arg("stack");
  if (!stack || !["verify", "restore", "status"].includes(verb)) {
    console.error("usage: npm run backup -- verify|restore|status --stack <stack> [--timestamp 2026-12-05T07:00:00Z]");
    return 2;
  }
  const cfg = stackConfig(stack);
  if (!cfg.backup) {
    console.error(`stack ${stack} has no offsite backup (set backup.replica, see README "Offsite backups")`);
    return 2;
  }
  const timestamp = arg("timestamp");
  const params: Record<string, string> = { APP: cfg.appName, ...(timestamp ? { TIMESTAMP: timestamp } : {}) };
  const { status } = runOnServer(cfg, "backup.sh", verb, params);
  return status === 0 ? 0 : 1;
}

process.exit(main());
