// What a rollback's down migrations drop, as the server measured it (the agent's rollback-loss:
// migrate.py loss runs them on a copy of the database), in the words fdeploy rollback prints.
export interface Lost {
  table: string;
  column?: string;
  rows?: number;
  values?: number;
  nonDefault?: number;
  rowsDeleted?: number;
}
export interface RollbackLoss {
  from: number;
  to: number;
  downs: { version: number; name: string; lost: Lost[] }[];
  /** PostgreSQL: the pg_dump's name (migrate_pg.py); unset: the SQLite copy's. */
  backupName?: string;
  backupDir: string;
}

const rows = (n: number) => `${n} row${n === 1 ? "" : "s"}`;

function describe(l: Lost): { text: string; data: boolean } {
  if (l.column !== undefined) {
    const n = l.nonDefault ?? l.values ?? 0;
    return { text: `drops column ${l.table}.${l.column} (${n ? `${rows(n)} ${n === 1 ? "holds" : "hold"} a value other than its default` : "every row holds its default: nothing lost"})`, data: n > 0 };
  }
  if (l.rowsDeleted !== undefined) return { text: `deletes ${rows(l.rowsDeleted)} of table ${l.table}`, data: l.rowsDeleted > 0 };
  return { text: `drops table ${l.table} (${rows(l.rows ?? 0)})`, data: (l.rows ?? 0) > 0 };
}

/** How the rollback's deploy undoes its down migrations: with backup.beforeChange replica (the app's
 * fdeploy record), the replica's restore point, restored by `fdeploy backup restore RESTORE --txid`. */
export interface Undo {
  replica: boolean;
  /** The options that name the stack (and app) to `fdeploy backup restore`. */
  restore: string;
}

/** The lines to print, and whether any down migration loses data (then the rollback asks first). */
export function describeLoss(loss: RollbackLoss, undo?: Undo): { lines: string[]; losesData: boolean } {
  if (!loss.downs.length) return { lines: [], losesData: false };
  let losesData = false;
  const lines = [`The rollback brings the database from schema version ${loss.from} down to ${loss.to} with these down migrations (newest first):`];
  for (const d of loss.downs) {
    const what = d.lost.map(describe);
    losesData ||= what.some((w) => w.data);
    const id = `${String(d.version).padStart(4, "0")}_${d.name}`;
    lines.push(what.length ? `  ${id}: ${what.map((w) => w.text).join("; ")}` : `  ${id}: drops no table or column`);
  }
  const copy = `${loss.backupDir}/ (the newest ${loss.backupName ?? `app-<time>-v${loss.from}.sqlite3`} there)`;
  if (undo?.replica && !loss.backupName) {   // Litestream replicates SQLite only: PostgreSQL's undo stays its pg_dump
    lines.push("Before them the deploy takes the replica's restore point as their undo (backup.beforeChange: replica) and prints it " +
      `(undo: … txid <txid>); to go back to it: fdeploy backup restore ${undo.restore} --txid <txid>. When replication is not healthy ` +
      `then, migrate.py backs the database up into ${copy} instead, and the undo: line says why.`);
  } else {
    lines.push(`Before them migrate.py backs the database up into ${copy}.`);
  }
  return { lines, losesData };
}
