// `flask-deploy init --ci github|gitlab` (cli/init/ci.ts): the files it writes into an app's repository
// are the examples byte for byte and pass actionlint there; a file that exists is left unless --force;
// it prints what to set in the CI's settings; a wrong provider is an error naming the option.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ciFiles } from "../../cli/init/ci";
import { tempDir } from "../tmpdir";
import { runInit } from "./init-run";

const ROOT = path.resolve(__dirname, "../..");

/** A user's repository holding the sample app and its migrations. */
function sample(): string {
  const dir = path.join(tempDir("fdeploy-ci-init-"), "notes");
  fs.mkdirSync(dir);
  for (const d of ["app", "migrations"]) fs.cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true, filter: (s) => !s.includes("__pycache__") });
  return dir;
}

const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), "utf8");

describe("flask-deploy init --ci", function () {
  this.timeout(180000);   // a cold build of actionlint

  it("github: the workflows and the setup action, equal to the examples; actionlint passes on them in the repo", () => {
    const dir = sample();
    const r = runInit(dir, "--ci", "github");
    assert.strictEqual(r.code, 0, r.err);
    const files = ciFiles(ROOT, "github");
    assert.deepStrictEqual(Object.keys(files).sort(), [
      ".github/actions/flask-deploy-setup/action.yml", ".github/workflows/flask-deploy-drift.yml",
      ".github/workflows/flask-deploy-preview.yml", ".github/workflows/flask-deploy.yml",
    ]);
    for (const [f, src] of Object.entries(files)) {
      assert.strictEqual(read(dir, f), fs.readFileSync(src, "utf8"), f);
      assert.match(r.out, new RegExp(`^wrote ${f.replace(/\./g, "\\.")}$`, "m"));
    }
    assert.ok(fs.existsSync(path.join(dir, "Pulumi.dev.yaml")), "the program too");
    const actionlint = execFileSync("bash", [path.join(ROOT, "toolchain/ci-tools.sh"), "path", "actionlint"], { encoding: "utf8" }).trim();
    execFileSync("git", ["init", "-q"], { cwd: dir });   // a repository: actionlint finds its .github/workflows itself
    const lint = spawnSync(actionlint, ["-color=false", "-shellcheck=shellcheck", "-verbose"], { cwd: dir, encoding: "utf8" });
    assert.match(lint.stderr, /^verbose: Found 0 errors in 3 files$/m, lint.stderr);
    assert.strictEqual(lint.status, 0, lint.stdout + lint.stderr);
    // what to set: the backend, the passphrase, the environments with their key and reviewers, the pinned host key
    for (const s of [/PULUMI_BACKEND_URL/, /PULUMI_CONFIG_PASSPHRASE/, /Environments dev and production, each with the secret SSH_PRIVATE_KEY/,
      /production: required reviewers/, /ssh-keyscan -t ed25519 HOST \| pulumi config set --stack dev --path flask-deploy:server\.hostKey/,
      /never StrictHostKeyChecking=no/]) {
      assert.match(r.out, s);
    }
  });

  it("gitlab: .gitlab-ci.yml equal to the example; what to set names File variables and the protected environment", () => {
    const dir = sample();
    const r = runInit(dir, "--ci", "gitlab");
    assert.strictEqual(r.code, 0, r.err);
    assert.strictEqual(read(dir, ".gitlab-ci.yml"), fs.readFileSync(path.join(ROOT, "examples/ci/gitlab/.gitlab-ci.yml"), "utf8"));
    assert.ok(!fs.existsSync(path.join(dir, ".github")));
    assert.match(r.out, /^wrote \.gitlab-ci\.yml$/m);
    assert.match(r.out, /SSH_PRIVATE_KEY: type File, protected, one per environment scope/);
    assert.match(r.out, /protect production/);
  });

  it("an existing file is left (named, with --force's hint); --force replaces only the CI files that differ", () => {
    const dir = sample();
    fs.mkdirSync(path.join(dir, ".github/workflows"), { recursive: true });
    const mine = "# the user's own deploy workflow\n";
    fs.writeFileSync(path.join(dir, ".github/workflows/flask-deploy.yml"), mine);
    fs.writeFileSync(path.join(dir, "index.ts"), "// the user's program\n");
    const first = runInit(dir, "--ci", "github");
    assert.strictEqual(first.code, 0, first.err);
    assert.strictEqual(read(dir, ".github/workflows/flask-deploy.yml"), mine);
    assert.match(first.out, /^left \.github\/workflows\/flask-deploy\.yml \(it exists; nothing changed; --force replaces it\)$/m);
    assert.match(first.out, /^wrote \.github\/workflows\/flask-deploy-preview\.yml$/m);
    const forced = runInit(dir, "--ci", "github", "--force");
    assert.strictEqual(forced.code, 0, forced.err);
    assert.strictEqual(read(dir, ".github/workflows/flask-deploy.yml"), read(ROOT, "examples/ci/github/.github/workflows/flask-deploy.yml"));
    assert.match(forced.out, /^replaced \.github\/workflows\/flask-deploy\.yml \(--force\)$/m);
    assert.match(forced.out, /^left \.github\/workflows\/flask-deploy-preview\.yml \(it exists; nothing changed\)$/m, "the same text: left");
    assert.strictEqual(read(dir, "index.ts"), "// the user's program\n", "--force never touches the program's files");
  });

  it("a provider other than github or gitlab, or --force without --ci: an error naming the option, nothing written", () => {
    const dir = sample();
    const bad = runInit(dir, "--ci", "jenkins");
    assert.notStrictEqual(bad.code, 0);
    assert.match(bad.err, /--ci <provider>.*'jenkins' is invalid\. Allowed choices are github, gitlab/);
    const force = runInit(dir, "--force");
    assert.strictEqual(force.code, 2);
    assert.match(force.err, /--force replaces only the CI files: use it with --ci github\|gitlab/);
    assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["app", "migrations"]);
  });
});
