// Defaults that depend on more than the key itself: the SQL migrations folder an unset migrationsDir
// means (by what the project holds), and the strategy an unset strategy means (by the stack's name).
import * as fs from "fs";
import * as path from "path";
import { Strategy } from "./schema";

/** The project folder that unset `migrationsDir` meant before it defaulted to <appDir>/migrations. */
export const LEGACY_MIGRATIONS_DIR = "migrations";

/**
 * Unset `migrationsDir`: <appDir>/migrations when that folder exists and is not Flask-Migrate's
 * (Alembic's env.py or alembic.ini: those run in releaseCommands, `flask db upgrade`), else none.
 */
export function defaultMigrationsDir(projectDir: string, appDir: string): string | undefined {
  const dir = path.join(appDir, "migrations");
  const abs = path.resolve(projectDir, dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) return undefined;
  return ["env.py", "alembic.ini"].some((f) => fs.existsSync(path.join(abs, f))) ? undefined : dir;
}

/** Unset `strategy`: zero-downtime blue-green for production stacks (prod*), a simple restart elsewhere. */
export function defaultStrategy(stack: string): Strategy {
  return /^prod/.test(stack) ? "blue-green" : "restart";
}
