// `pulumi preview` with a release pinned (the stack's `release` setting, as fdeploy rollback sets it):
// one warning naming the down migrations the up will run and what each drops. Read-only and without
// the server: the schema versions come from the stack's last outputs (schemaVersion, releaseHistory),
// what the SQL drops from migrate.py loss on a scratch database built from the local migrations
// folder (so no row counts: fdeploy rollback measures those on the server and asks first).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Lost, RollbackLoss } from "../cli/lib/rollback-loss";
import type { HistoryEntry } from "./activation";
import { lastOutputs } from "./migrations-default";
import { SCRIPTS_DIR } from "./remote-script";

/** What the last up left in the stack's outputs. */
export interface LastUp { releaseId?: string; schemaVersion?: number; releaseHistory?: HistoryEntry[] }

/** The down migrations of DIR from schema version FROM down to TO (newest first), what their SQL drops. */
export function localDowns(dir: string, from: number, to: number): RollbackLoss["downs"] {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fdeploy-downs-"));
  const migrate = (...args: string[]) => execFileSync("python3", [path.join(SCRIPTS_DIR, "migrate.py"), "--db", path.join(tmp, "app.sqlite3"),
    "--dir", dir, "--backup-dir", path.join(tmp, "backups"), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  try {
    migrate("up");
    const loss: RollbackLoss = JSON.parse(migrate("loss", "--to", String(to)).trim().split("\n").pop()!);
    return loss.downs.filter((d) => d.version <= from);   // not the local ones never deployed
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const drops = (l: Lost) => l.column !== undefined ? `drops column ${l.table}.${l.column}`
  : l.rowsDeleted !== undefined ? `deletes rows of table ${l.table}` : `drops table ${l.table}`;

/** The warning for a preview of pinning PINNED after LAST; undefined when no down migration runs. */
export function rollbackWarning(pinned: string, last: LastUp, dir: string, appRoot: string): string | undefined {
  if (!last.releaseId || last.releaseId === pinned || last.schemaVersion === undefined) return undefined;   // first deploy, or pinned already
  const entry = [...(last.releaseHistory ?? [])].reverse().find((e) => e.releaseId === pinned && e.status === "live");
  const from = last.schemaVersion;
  if (!entry) {
    return `flask-deploy:release ${pinned}: its schema version is not in the stack's releaseHistory output, so this preview cannot tell ` +
      `which down migrations run; fdeploy rollback --to ${pinned} lists them with what they drop and asks first`;
  }
  const to = Number(entry.schemaVersion);
  if (!(to < from)) return undefined;
  let downs: RollbackLoss["downs"];
  try {
    downs = localDowns(dir, from, to);
  } catch (e: any) {
    return `flask-deploy:release ${pinned}: this up runs the down migrations from schema version ${from} to ${to}; what they drop is ` +
      `unknown here (${String(e.stderr || e.message).trim().split("\n").pop()}): fdeploy rollback --to ${pinned} lists it and asks first`;
  }
  if (!downs.length) return undefined;
  const list = downs.map((d) => `${String(d.version).padStart(4, "0")}_${d.name} ${d.lost.length ? d.lost.map(drops).join(", ") : "drops no table or column"}`);
  return `flask-deploy:release ${pinned}: this up runs down migrations from schema version ${from} to ${to}, newest first: ${list.join("; ")}\n` +
    `migrate.py backs the database up first into ${appRoot}/shared/backups/ (app-<time>-v${from}.sqlite3); the rows these drop: ` +
    `fdeploy rollback --to ${pinned} counts them on the server and asks first`;
}

/** At preview with a release pinned: the warning, from this stack's last outputs (a read of its own state). */
export async function warnRollbackLoss(pinned: string | undefined, dir: string | undefined, appRoot: string,
  read: (keys: string[]) => Promise<Record<string, unknown>> = lastOutputs,
  warn: (m: string) => void = (m) => { pulumi.log.warn(m); }): Promise<void> {
  if (!pinned || !dir || !pulumi.runtime.isDryRun()) return;
  const said = rollbackWarning(pinned, await read(["releaseId", "schemaVersion", "releaseHistory"]) as LastUp, dir, appRoot);
  if (said) warn(said);
}
