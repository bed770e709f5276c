// Shared fixtures for unit tests: a valid raw stack config, a temp key file, and the message a config is refused with.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, NAMESPACE, parseConfig, RawConfig } from "../../components/config";
import { tempDir } from "../tmpdir";

export const PROJECT_DIR = path.resolve(__dirname, "../..");
export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm7rN1hz9s2Jq0hX5vY4Yx0P3zq8m2lK9sQh7tV1yUe";

export function tempKeyFile(): string {
  const dir = tempDir("fdeploy-unit-");
  const p = path.join(dir, "id_ed25519");
  fs.writeFileSync(p, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
  return p;
}

/** A valid config; `over` replaces (or with undefined, removes) keys, given without the namespace. */
export function rawConfig(over: Record<string, unknown> = {}, secret: string[] = ["secrets"]): RawConfig {
  const base: Record<string, unknown> = {
    server: { host: "10.213.0.10", user: "root", privateKeyPath: tempKeyFile(), hostKey: HOST_KEY },
    serverName: "example.com www.example.com",
    workers: "3",
    env: { APP_GREETING: "hi" },
    secrets: { SECRET_KEY: "s3cr3t-value" },
  };
  const merged = { ...base, ...over };
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(merged)) {
    if (v === undefined) continue;
    values[`${NAMESPACE}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return { values, secretKeys: secret.map((k) => `${NAMESPACE}:${k}`) };
}

/** The ConfigError message `parse` throws (the test fails if it throws none, or another error). */
export function refusal(parse: () => unknown): string {
  try {
    parse();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    return (e as Error).message;
  }
  assert.fail("expected the config to be refused");
}

/** The message rawConfig(over, secret) is refused with. */
export function errorOf(over: Record<string, unknown>, secret?: string[], dotenv: Record<string, string> = {}): string {
  return refusal(() => parseConfig(rawConfig(over, secret), PROJECT_DIR, dotenv));
}

/** `fdeploy ARGS…` in this process (cli/main.ts), in folder CWD if given: its exit code and what it printed. */
export async function runFdeploy(args: string[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  const { main } = await import("../../cli/main");
  let out = "", err = "";
  const w = process.stdout.write, e = process.stderr.write, dir = process.cwd();
  process.stdout.write = ((s: string) => ((out += s), true)) as any;
  process.stderr.write = ((s: string) => ((err += s), true)) as any;
  if (cwd) process.chdir(cwd);
  try {
    return { code: await main(["node", "fdeploy", ...args]), out, err };
  } finally {
    process.stdout.write = w;
    process.stderr.write = e;
    process.exitCode = undefined;
    process.chdir(dir);
  }
}
