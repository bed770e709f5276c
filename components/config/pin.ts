// The release pin of a rollback, per app: a stack config key the FlaskApp reads itself, so that
// `fdeploy rollback` works for a FlaskApp in any program. The app flaskAppArgsFromConfig() builds keeps
// `flask-deploy:release` (read with its other keys: existing stacks unchanged); any other FlaskApp NAME
// reads `flask-deploy:apps.NAME.release`.
import { z } from "zod";

export const RELEASE_ID = /^[0-9a-f]{12}$/;
export const releaseIdSchema = z.string().regex(RELEASE_ID,
  "expected a kept release id (12 hex characters, fdeploy releases); fdeploy rollback sets it, fdeploy rollback --forward unpins");

/** `apps.<name>.release` (the only per-app key so far). */
export const appPinSchema = z.strictObject({ release: releaseIdSchema.optional() });
export const appsSchema = z.record(z.string(), appPinSchema);

/** The config key of the release pin of the FlaskApp NAME that does not come from flaskAppArgsFromConfig(). */
export function appPinKey(namespace: string, name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? `${namespace}:apps.${name}.release` : `${namespace}:apps[${JSON.stringify(name)}].release`;
}

/** The release APPS (the value of `<namespace>:apps`, as JSON text or parsed) pins for NAME; a problem names KEY. */
export function appPin(apps: unknown, name: string, key: string): { release?: string; problem?: string } {
  if (apps === undefined || apps === null) return {};
  let value = apps;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return { problem: `${key}: expected an object of apps (pulumi config set --path '${key}' <release id>)` };
    }
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    return { problem: `${key}: expected an object of apps (pulumi config set --path '${key}' <release id>)` };
  }
  const mine = (value as Record<string, unknown>)[name];
  if (mine === undefined) return {};
  const r = appPinSchema.safeParse(mine);
  if (!r.success) return { problem: `${key}: ${r.error.issues[0].message}` };
  return r.data.release === undefined ? {} : { release: r.data.release };
}
