// The stack's config file itself (YAML, through js-yaml, a declared dependency): values Pulumi hands
// the program as secret although the file holds them in plaintext. Fails closed.
import * as fs from "fs";
import { NAMESPACE } from "./schema";
import { ConfigError } from "./errors";

/**
 * `pulumi config set --path secrets.X VALUE` without --secret, next to an encrypted sibling, makes
 * Pulumi mark the whole `secrets` object secret: the program cannot tell that X sits in plaintext in
 * the stack's config file. The file can: the names under `secrets` in FILE that are not
 * `secure:` values. (Only the stack's config file in the project is checked; a file given with
 * --config-file is not visible to the program.)
 */
export function plaintextSecretNames(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  const doc = stackFileYaml(file);
  const plain = (obj: any): string[] => {
    if (!obj || typeof obj !== "object" || Array.isArray(obj) || typeof obj.secure === "string") return [];
    return Object.keys(obj).filter((k) => !(obj[k] && typeof obj[k] === "object" && typeof obj[k].secure === "string"));
  };
  return [...plain(doc?.config?.[`${NAMESPACE}:secrets`]),
    ...plain(doc?.config?.[`${NAMESPACE}:backupSecrets`]).map((k) => `backupSecrets.${k}`)];
}

/** tls.privateKey in FILE is a plaintext value (not `secure:`). */
export function plaintextTlsKey(file: string): boolean {
  if (!fs.existsSync(file)) return false;
  const k = stackFileYaml(file)?.config?.[`${NAMESPACE}:tls`]?.privateKey;
  return k !== undefined && !(k && typeof k === "object" && typeof k.secure === "string");
}

/** FILE's YAML. Fails closed: the plaintext checks above must never pass because the file (or the YAML
 * parser, js-yaml: a declared dependency) could not be read. LOAD: the parser (replaceable in tests). */
export function stackFileYaml(file: string, load: (text: string) => any = (t) => require("js-yaml").load(t)): any {
  try {
    return load(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError([`${file}: could not be read as YAML to check for secrets stored in plaintext ` +
      `(${e instanceof Error ? e.message.split("\n")[0] : e}); fix the file, or reinstall the packages (npm ci) if js-yaml is missing`]);
  }
}
