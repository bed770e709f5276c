// Secrets set without --secret next to an encrypted one: Pulumi then marks the whole `secrets`
// object secret, so only the stack's config file shows the plaintext value; config.ts reads it and
// refuses. Config errors are Pulumi RunErrors: the CLI prints the message without a stack trace.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { RunError } from "@pulumi/pulumi/errors";
import { ConfigError, parseConfig, plaintextSecretNames, plaintextTlsKey } from "../../components/config";
import { PROJECT_DIR, rawConfig } from "./helpers";
import { tempDir } from "../tmpdir";

function stackFile(yaml: string): string {
  const p = path.join(tempDir("fdeploy-unit-"), "Pulumi.test.yaml");
  fs.writeFileSync(p, yaml);
  return p;
}

describe("secrets stored in plaintext in the stack's config file", () => {
  it("names the plaintext entries under flask-deploy:secrets", () => {
    const file = stackFile(`encryptionsalt: v1:abc
config:
  flask-deploy:secrets:
    SECRET_KEY:
      secure: v1:AAAA:BBBB
    API_TOKEN: plaintext-token
    EMPTY: ""
  flask-deploy:env:
    APP_GREETING: hello
`);
    assert.deepStrictEqual(plaintextSecretNames(file), ["API_TOKEN", "EMPTY"]);
  });

  it("accepts all-encrypted entries, a wholly encrypted object, no secrets, and no file", () => {
    assert.deepStrictEqual(plaintextSecretNames(stackFile("config:\n  flask-deploy:secrets:\n    A:\n      secure: v1:x\n    B: {secure: 'v1:y'}\n")), []);
    assert.deepStrictEqual(plaintextSecretNames(stackFile("config:\n  flask-deploy:secrets:\n    secure: v1:whole-object\n")), []);
    assert.deepStrictEqual(plaintextSecretNames(stackFile("config:\n  flask-deploy:workers: \"2\"\n")), []);
    assert.deepStrictEqual(plaintextSecretNames(stackFile("encryptionsalt: v1:only\n")), []);
    assert.deepStrictEqual(plaintextSecretNames(path.join(os.tmpdir(), "no-such-dir", "Pulumi.x.yaml")), []);
  });

  it("fails closed: a file it cannot read as YAML is refused, naming the file (never taken for one without plaintext)", () => {
    const file = stackFile("config: [unclosed\n");
    for (const check of [plaintextSecretNames, plaintextTlsKey]) {
      assert.throws(() => check(file), (e: any) => e instanceof ConfigError && e.message.includes(`${file}: could not be read as YAML`));
    }
  });

  it("fails closed without its YAML parser (js-yaml missing), naming the file", () => {
    const file = stackFile("config:\n  flask-deploy:secrets:\n    API_TOKEN: plain\n  flask-deploy:tls:\n    privateKey: plain\n");
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const Module = require("module");
    const load = Module._load;
    Module._load = function (request: string, ...rest: unknown[]) {
      if (request === "js-yaml") throw Object.assign(new Error("Cannot find module 'js-yaml'"), { code: "MODULE_NOT_FOUND" });
      return load.call(this, request, ...rest);
    };
    try {
      for (const check of [plaintextSecretNames, plaintextTlsKey]) {
        assert.throws(() => check(file), (e: any) => e instanceof ConfigError && e.message.includes(file) && /js-yaml/.test(e.message));
      }
    } finally {
      Module._load = load;
    }
    assert.deepStrictEqual(plaintextSecretNames(file), ["API_TOKEN"]);
    assert.strictEqual(plaintextTlsKey(file), true);
  });

  it("parseConfig refuses each plaintext secret, naming the key and the command that fixes it", () => {
    try {
      parseConfig({ ...rawConfig(), plaintextSecrets: ["API_TOKEN"] }, PROJECT_DIR);
      assert.fail("expected a ConfigError");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.match((e as Error).message,
        /flask-deploy:secrets\.API_TOKEN: stored in plaintext in the stack's config file; must be set as a secret: pulumi config set --secret --path 'secrets\.API_TOKEN' VALUE/);
    }
  });

  it("config errors are RunErrors, printed by Pulumi without a stack trace", () => {
    assert.ok(RunError.isInstance(new ConfigError(["x"])));
  });
});
