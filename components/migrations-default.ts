// Unset `migrationsDir` used to mean the project's own migrations/ folder for any appDir (a user's
// app got the sample app's migrations). It now means <appDir>/migrations (config.ts). A stack that
// earlier ups deployed under the old default keeps it, with a warning, so no stack silently loses
// (or gains) a migrations step. The rule, from the stack's own last outputs (a StackReference to
// itself, read only when the two defaults differ):
//   - an output `migrationsDir` (written since this change): that is what the stack ran with;
//   - else an output `schemaVersion` (older program): > 0 means its ups applied the project's
//     migrations/, 0 means none;
//   - no outputs (a new stack): the new default.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig, NO_MIGRATIONS } from "./config";

/** What unset migrationsDir resolved to at the stack's last up, from its outputs (undefined: never deployed). */
export function previousMigrationsDir(outputs: Record<string, unknown>, legacy: string): string | undefined {
  if (typeof outputs.migrationsDir === "string") return outputs.migrationsDir;
  if (outputs.schemaVersion === undefined) return undefined;
  return Number(outputs.schemaVersion) > 0 ? legacy : NO_MIGRATIONS;
}

const refs = new Map<string, pulumi.StackReference>();
/** The stack's last outputs KEYS, read through a StackReference to the stack itself (resource RESOURCE, with OPTS;
 *  one per resource name and program run). */
export async function lastOutputs(keys = ["migrationsDir", "schemaVersion"], resource = "previous-outputs",
  opts?: pulumi.CustomResourceOptions): Promise<Record<string, unknown>> {
  const name = `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`;
  let ref = refs.get(resource);
  if (!ref) { ref = new pulumi.StackReference(resource, { name }, opts); refs.set(resource, ref); }
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const d = await ref.getOutputDetails(k);
    if (d.value !== undefined) out[k] = d.value;
  }
  return out;
}

/**
 * cfg.migrationsDir, with the old default kept (and a warning naming migrationsDir) for a stack whose
 * earlier ups ran with it. READ: the stack's last outputs; LOG: where the warning goes (both replaceable in tests).
 */
export async function resolveMigrationsDir(cfg: DeployConfig, read: () => Promise<Record<string, unknown>> = lastOutputs,
  log: { warn: (m: string) => void; info: (m: string) => void } = { warn: (m) => pulumi.log.warn(m), info: (m) => pulumi.log.info(m) }): Promise<string | undefined> {
  const legacy = cfg.legacyMigrationsDir;
  if (legacy === undefined) return cfg.migrationsDir;
  const now = cfg.migrationsDir ?? NO_MIGRATIONS;
  const before = previousMigrationsDir(await read(), legacy);
  if (before === legacy) {
    log.warn(`migrationsDir is unset: this stack's earlier ups ran with '${legacy}' (the old default: the project's migrations/ ` +
      `folder for any appDir); it is kept. Unset now means '${now}' (<appDir>/migrations when it exists). Say which: ` +
      `pulumi config set migrationsDir ${legacy === NO_MIGRATIONS ? NO_MIGRATIONS : legacy}   (keep it, and silence this warning), or ` +
      `pulumi config set migrationsDir ${now}`);
    return legacy === NO_MIGRATIONS ? undefined : legacy;
  }
  if (before === undefined && legacy !== NO_MIGRATIONS) {
    log.info(`migrationsDir is unset: ${now === NO_MIGRATIONS ? "no SQL migrations" : `the SQL migrations in ${now}`}; the project's ` +
      `${legacy}/ folder (the sample app's) is not applied unless the stack says so: pulumi config set migrationsDir ${legacy}`);
  }
  return cfg.migrationsDir;
}
