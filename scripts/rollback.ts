// npm run rollback -- --stack prod [--to <release id>]
//
// One-command rollback: on the stack's server, make the previous healthy release (or the one
// named) live again — no upload, no install — and bring the schema down to the version it ran
// with, after a backup (components/scripts/rollback.sh). Then it marks the activation, migration
// and health-check steps in the stack's state as tainted, so Pulumi knows the server differs
// from the program: the next plain `pulumi up` deploys the code in appDir again (roll forward).
// To stay on the old release, revert the code first (see README "Rollback").
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { expandHome, parseConfig } from "../components/config";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function pulumi(args: string[], stack: string): string {
  // --config-file: a stack whose config lives elsewhere than Pulumi.<stack>.yaml (tests)
  const configFile = arg("config-file");
  const extra = configFile && args[0] === "config" ? ["--config-file", configFile] : [];
  return execFileSync("pulumi", [...args, "--stack", stack, ...extra, "--non-interactive"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

function main(): number {
  const stack = arg("stack");
  const to = arg("to") ?? "";
  if (!stack) {
    console.error("usage: npm run rollback -- --stack <stack> [--to <release id>]");
    return 2;
  }
  if (to && !/^[0-9a-f]{12}$/.test(to)) {
    console.error(`--to: expected a release id (12 hex characters, see the releaseHistory output), got '${to}'`);
    return 2;
  }
  const projectDir = path.resolve(__dirname, "..");
  // the server's connection settings, validated like the program does
  const rawValues: Record<string, string> = {};
  const json = JSON.parse(pulumi(["config", "--json", "--show-secrets"], stack));
  for (const [k, v] of Object.entries<any>(json)) rawValues[k] = typeof v.value === "string" ? v.value : JSON.stringify(v.objectValue ?? v.value);
  const secretKeys = Object.entries<any>(json).filter(([, v]) => v.secret).map(([k]) => k);
  const dotenv: Record<string, string> = {};
  require("dotenv").config({ path: path.join(projectDir, ".env"), processEnv: dotenv, quiet: true });
  const cfg = parseConfig({ values: rawValues, secretKeys }, projectDir, { ...dotenv, ...process.env });
  const s = cfg.server;

  // ssh with the pinned host key only
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fdeploy-rollback-"));
  const knownHosts = path.join(tmp, "known_hosts");
  fs.writeFileSync(knownHosts, `${s.port === 22 ? s.host : `[${s.host}]:${s.port}`} ${s.hostKey.split(" ").slice(0, 2).join(" ")}\n`);
  const sshArgs = ["-p", String(s.port), "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes",
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
    ...(s.privateKeyPath ? ["-i", expandHome(s.privateKeyPath)] : []), `${s.user}@${s.host}`];
  // the newest script bundle the deploys uploaded (stack outputs are not kept after a failed up)
  const run = `${s.user === "root" ? "" : "sudo -n "}bash "$(ls -td .fdeploy/${cfg.appName}/scripts-*/ | head -n1)rollback.sh" create`;
  console.log(`rolling back stack ${stack} on ${s.user}@${s.host}${to ? ` to ${to}` : " to the previous healthy release"}…`);
  const r = spawnSync("ssh", [...sshArgs, run], { input: JSON.stringify({ APP: cfg.appName, TO: to }), stdio: ["pipe", "inherit", "inherit"] });
  fs.rmSync(tmp, { recursive: true, force: true });
  if (r.status !== 0) {
    console.error(`rollback failed (exit ${r.status}); the server's live release is whatever the lines above say`);
    return 1;
  }

  // tell Pulumi the server now differs from the program
  const state = JSON.parse(pulumi(["stack", "export"], stack));
  const names = ["activation-switch", "migrations-apply", "health-probe"];
  const urns: string[] = (state.deployment.resources ?? []).map((x: any) => x.urn).filter((u: string) => names.includes(u.split("::").pop()!));
  if (urns.length) pulumi(["state", "taint", "--yes", ...urns], stack);
  console.log(`\nDone. The next plain \`pulumi up --stack ${stack}\` deploys the code in appDir again (roll forward);`);
  console.log("revert the code first to stay on the rolled-back release.");
  return 0;
}

process.exit(main());
