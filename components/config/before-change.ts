// backup.beforeChange: replica needs the replica it would use (checked on the raw input: without
// backup.replica the schema refuses the backup object before its own checks could say why).
import { NAMESPACE } from "./schema";

export function checkBeforeChange(backup: unknown): string[] {
  const b = backup && typeof backup === "object" ? (backup as Record<string, unknown>) : undefined;
  if (b?.beforeChange === "replica" && (b.replica === undefined || b.replica === "")) {
    return [`${NAMESPACE}:backup.beforeChange: replica needs ${NAMESPACE}:backup.replica (the offsite replica whose restore point is the undo; ` +
      `README "Offsite backups"): set backup.replica, or backup.beforeChange copy (the default: a local copy)`];
  }
  return [];
}

/** The FdeployRecord's beforeChange: set only with replica, so that every other stack's record stays as it was. */
export function beforeChangeRecord(backup: { beforeChange?: string } | undefined): { beforeChange?: "replica" } {
  return backup?.beforeChange === "replica" ? { beforeChange: "replica" } : {};
}
