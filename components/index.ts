// The package's entry: the FlaskApp component, its settings type, and the two ways to build them:
// from the stack's `flask-deploy:*` config (every existing stack file keeps working), or from plain
// values in the program (the same schema validates both).
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig, NAMESPACE, parseConfig } from "./config";
import { FdeployRecord, FlaskApp, FlaskAppArgs, FlaskAppOutputs } from "./flask-app";
import { quickError } from "./program";

export { FdeployRecord, FlaskApp, FlaskAppArgs, FlaskAppOutputs };
export { DatabaseServer, DatabaseServerArgs } from "./database-server";

/**
 * The running stack's `flask-deploy:*` config, validated (a ConfigError naming each bad key), with the server falling
 * back to FDEPLOY_SERVER_* from PROJECTDIR's git-ignored .env. PROJECTDIR: where Pulumi.yaml is (default: the
 * program's working directory). The children keep the names the single-app program gave them (legacyNames).
 */
export function flaskAppArgsFromConfig(projectDir: string = process.cwd()): FlaskAppArgs {
  try {
    return { ...loadStackConfig(projectDir), projectDir, legacyNames: true, releaseKey: `${NAMESPACE}:release` };
  } catch (e) {
    throw quickError(e);
  }
}

/**
 * SETTINGS (the config keys README documents, without the namespace; values as in `pulumi config`: strings or
 * objects), validated by the stack config's schema. `secrets`, `backupSecrets`, `tls`, `database` and `databasePassword` count as secret values.
 */
export function flaskAppArgs(settings: Record<string, unknown>, projectDir: string = process.cwd()): FlaskAppArgs {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(settings)) {
    if (v !== undefined) values[`${NAMESPACE}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const secretKeys = ["secrets", "backupSecrets", "tls", "database", "databasePassword"].map((k) => `${NAMESPACE}:${k}`);
  try {
    return { ...parseConfig({ values, secretKeys }, projectDir, {}, pulumi.getStack()), projectDir };
  } catch (e) {
    throw quickError(e);
  }
}
