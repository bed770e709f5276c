// The machine-local settings of a project: its git-ignored .env (FDEPLOY_SERVER_*: the server when
// the stack config has none), under the process environment.
import * as path from "path";

/** Machine-local server settings from a git-ignored .env (see README), used when the stack has no `server`. */
export function serverFromDotenv(env: Record<string, string | undefined>): Record<string, string> | undefined {
  if (!env.FDEPLOY_SERVER_HOST) return undefined;
  const s: Record<string, string> = { host: env.FDEPLOY_SERVER_HOST };
  if (env.FDEPLOY_SERVER_PORT) s.port = env.FDEPLOY_SERVER_PORT;
  if (env.FDEPLOY_SERVER_USER) s.user = env.FDEPLOY_SERVER_USER;
  if (env.FDEPLOY_SERVER_KEY_PATH) s.privateKeyPath = env.FDEPLOY_SERVER_KEY_PATH;
  if (env.FDEPLOY_SERVER_HOST_KEY) s.hostKey = env.FDEPLOY_SERVER_HOST_KEY;
  return s;
}

/** PROJECTDIR's .env (if any) with the process environment over it. */
export function localEnv(projectDir: string): Record<string, string | undefined> {
  const local: Record<string, string> = {};
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  require("dotenv").config({ path: path.join(projectDir, ".env"), processEnv: local, quiet: true });
  return { ...local, ...process.env };
}
