// The running program's raw stack config, as the Pulumi SDK holds it, validated (parse.ts).
import * as path from "path";
import { DeployConfig } from "./schema";
import { localEnv } from "./dotenv";
import { parseConfig } from "./parse";
import { plaintextSecretNames, plaintextTlsKey } from "./stack-file";

/**
 * The running stack's validated config: `pulumi config` of this stack, with the server falling back
 * to FDEPLOY_SERVER_* from the project's git-ignored .env (machine-local settings).
 */
export function loadStackConfig(projectDir: string): DeployConfig {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const pulumi = require("@pulumi/pulumi");
  // isConfigSecret is exported by the SDK's runtime but not typed as public API
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { isConfigSecret } = require("@pulumi/pulumi/runtime/config");
  const values: Record<string, string> = pulumi.runtime.allConfig();
  const secretKeys = Object.keys(values).filter((k) => isConfigSecret(k));
  const stackFile = path.join(projectDir, `Pulumi.${pulumi.getStack()}.yaml`);
  const plaintextSecrets = plaintextSecretNames(stackFile);
  return parseConfig({ values, secretKeys, plaintextSecrets, plaintextTlsKey: plaintextTlsKey(stackFile) }, projectDir, localEnv(projectDir), pulumi.getStack());
}
