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

/** The lines to print, and whether any down migration loses data (then the rollback asks first). */
export function describeLoss(loss: RollbackLoss): { lines: string[]; losesData: boolean } {
  if (!loss.downs.length) return { lines: [], losesData: false };
  let losesData = false;
  const lines = [`The rollback brings the database from schema version ${loss.from} down to ${loss.to} with these down migrations (newest first):`];
  for (const d of loss.downs) {
    const what = d.lost.map(describe);
    losesData ||= what.some((w) => w.data);
    const id = `${String(d.version).padStart(4, "0")}_${d.name}`;
    lines.push(what.length ? `  ${id}: ${what.map((w) => w.text).join("; ")}` : `  ${id}: drops no table or column`);
  }
  lines.push(`Before them migrate.py backs the database up into ${loss.backupDir}/ (the newest ${loss.backupName ?? `app-<time>-v${loss.from}.sqlite3`} there).`);
  return { lines, losesData };
}
