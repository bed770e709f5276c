// The CI files of examples/ci/ (what `flask-deploy init --ci github|gitlab` writes): actionlint (built by
// toolchain/ci-tools.sh) passes on every GitHub workflow; shellcheck on the bash that actionlint does not
// see (the composite action, GitLab's scripts); and the keys local runners do not implement (act: concurrency,
// environments; gitlab-ci-local: resource_group) say what README "Deploy from CI" promises.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { tempDir } from "../tmpdir";

const ROOT = path.resolve(__dirname, "../..");
const GITHUB = path.join(ROOT, "examples/ci/github");
const WORKFLOWS = path.join(GITHUB, ".github/workflows");
const ACTION = ".github/actions/flask-deploy-setup";
const GITLAB = path.join(ROOT, "examples/ci/gitlab/.gitlab-ci.yml");
const yaml = (file: string): any => require("js-yaml").load(fs.readFileSync(file, "utf8"));
const workflow = (name: string): any => yaml(path.join(WORKFLOWS, name));
const files = fs.readdirSync(WORKFLOWS).filter((f) => f.endsWith(".yml"));

/** shellcheck -S warning on SCRIPT (bash); its findings, "" when clean. */
function shellcheck(script: string): string {
  const f = path.join(tempDir("ci-sh-"), "step.sh");
  fs.writeFileSync(f, `#!/usr/bin/env bash\n${script}\n`);
  const r = spawnSync("shellcheck", ["-S", "warning", f], { encoding: "utf8" });
  return r.status === 0 ? "" : r.stdout + r.stderr;
}

describe("CI examples: GitHub Actions", function () {
  this.timeout(180000);   // a cold build of actionlint takes seconds to a minute

  it("actionlint passes on every workflow (with shellcheck on their run: steps)", () => {
    assert.deepStrictEqual(files.sort(), ["flask-deploy-drift.yml", "flask-deploy-preview.yml", "flask-deploy.yml"]);
    const actionlint = execFileSync("bash", [path.join(ROOT, "toolchain/ci-tools.sh"), "path", "actionlint"], { encoding: "utf8" }).trim();
    assert.ok(spawnSync("shellcheck", ["--version"]).status === 0, "shellcheck is needed (scripts/test.sh installs it)");
    const r = spawnSync(actionlint, ["-color=false", "-shellcheck=shellcheck", ...files.map((f) => path.join(".github/workflows", f))],
      { cwd: GITHUB, encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stdout + r.stderr);
  });

  it("the composite action's bash is shellcheck-clean", () => {
    const action = yaml(path.join(GITHUB, ACTION, "action.yml"));
    assert.strictEqual(action.runs.using, "composite");
    for (const step of action.runs.steps) {
      assert.strictEqual(step.shell, "bash", step.name);
      assert.strictEqual(shellcheck(step.run), "", step.name);
    }
  });

  it("only actions/checkout@v4 and the local setup action; secrets only in env, never in a script", () => {
    for (const f of files) {
      for (const [name, job] of Object.entries<any>(workflow(f).jobs)) {
        const uses = job.steps.filter((s: any) => s.uses).map((s: any) => s.uses);
        assert.deepStrictEqual(uses, ["actions/checkout@v4", `./${ACTION}`], `${f} ${name}`);
        for (const s of job.steps) assert.doesNotMatch(s.run ?? "", /\$\{\{/, `${f} ${name}: an expression spliced into a script`);
      }
    }
    const text = [...files.map((f) => path.join(WORKFLOWS, f)), path.join(GITHUB, ACTION, "action.yml"), GITLAB]
      .map((f) => fs.readFileSync(f, "utf8")).join("\n");
    assert.doesNotMatch(text, /StrictHostKeyChecking|known_hosts/i, "the host key is the stack's server.hostKey");
  });

  it("pull request: a preview of dev and prod whose agent gets no key", () => {
    const w = workflow("flask-deploy-preview.yml");
    assert.deepStrictEqual(Object.keys(w.on), ["pull_request"]);
    const job = w.jobs.preview;
    assert.deepStrictEqual(job.strategy.matrix.stack, ["dev", "prod"]);
    assert.strictEqual(job.environment, undefined, "no environment: its reviewers would gate every preview");
    const runs = job.steps.map((s: any) => s.run ?? "").join("\n");
    // one preview per stack: its JSON yields the log's list of changes (--steps) and the summary
    assert.strictEqual(runs.match(/pulumi preview/g)?.length, 1, runs);
    assert.match(runs, /pulumi preview --json --stack "\$STACK" --non-interactive >"\$RUNNER_TEMP\/preview.json"/);
    assert.match(runs, /fdeploy preview-summary --stack "\$STACK" --preview "\$RUNNER_TEMP\/preview.json" --steps \| tee -a "\$GITHUB_STEP_SUMMARY"/);
    assert.strictEqual(shellcheck(runs), "");
    assert.doesNotMatch(JSON.stringify(w), /SSH_PRIVATE_KEY|pulumi up/);
  });

  it("push to main: up of dev, then prod behind the environment production; one deploy per stack, none cancelled", () => {
    const w = workflow("flask-deploy.yml");
    assert.deepStrictEqual(w.on.push.branches, ["main"]);
    const { dev, prod } = w.jobs;
    assert.strictEqual(prod.needs, "dev");
    assert.strictEqual(prod.environment, "production");
    for (const [stack, job] of [["dev", dev], ["prod", prod]]) {
      assert.deepStrictEqual(job.concurrency, { group: `flask-deploy-${stack}`, "cancel-in-progress": false });
      assert.ok(job.steps.some((s: any) => s.run === `pulumi up --yes --diff --stack ${stack} --non-interactive`), stack);
      assert.strictEqual(job.steps.find((s: any) => s.uses?.startsWith("./")).env.SSH_PRIVATE_KEY, "${{ secrets.SSH_PRIVATE_KEY }}");
      assert.deepStrictEqual(job.steps.at(-1).if, "always()", "the last step stops the ssh-agent");
    }
  });

  it("nightly drift: preview --refresh --expect-no-changes per stack, in the stack's deploy group", () => {
    const w = workflow("flask-deploy-drift.yml");
    assert.ok(w.on.schedule[0].cron);
    const job = w.jobs.drift;
    assert.deepStrictEqual(job.strategy.matrix.include.map((m: any) => [m.stack, m.environment]), [["dev", "dev"], ["prod", "production"]]);
    assert.deepStrictEqual(job.concurrency, { group: "flask-deploy-${{ matrix.stack }}", "cancel-in-progress": false });
    assert.ok(job.steps.some((s: any) => /pulumi preview --refresh --expect-no-changes .*--stack "\$STACK"/.test(s.run ?? "")));
  });
});

describe("CI examples: GitLab CI", () => {
  const ci = yaml(GITLAB);
  it("merge request preview, dev then a manual prod on the default branch, scheduled drift; resource_group per stack", () => {
    assert.deepStrictEqual(ci.stages, ["preview", "dev", "prod", "drift"]);
    assert.deepStrictEqual(ci.preview.parallel.matrix, [{ STACK: ["dev", "prod"] }]);
    assert.strictEqual(ci.preview.resource_group, undefined);
    assert.deepStrictEqual([ci["deploy-dev"].resource_group, ci["deploy-prod"].resource_group], ["flask-deploy-dev", "flask-deploy-prod"]);
    assert.deepStrictEqual([ci["drift-dev"].resource_group, ci["drift-prod"].resource_group], ["flask-deploy-dev", "flask-deploy-prod"]);
    assert.strictEqual(ci["deploy-prod"].rules[0].when, "manual");
    assert.strictEqual(ci["deploy-prod"].rules[0].allow_failure, false);
    assert.deepStrictEqual(ci["deploy-prod"].needs, ["deploy-dev"]);
    assert.strictEqual(ci["deploy-prod"].environment.name, "production");
    assert.deepStrictEqual(ci["deploy-prod"].script, ["pulumi up --yes --diff --stack prod --non-interactive"]);
    assert.match(ci[".drift"].script[0], /pulumi preview --refresh --expect-no-changes/);
    const preview = ci.preview.script.join("\n");
    assert.strictEqual(preview.match(/pulumi preview/g)?.length, 1, "one preview per stack: its JSON yields the list of changes and the summary");
    assert.match(preview, /fdeploy preview-summary --stack "\$STACK" --preview "flask-deploy-preview\/\$STACK.json" --steps/);
    assert.strictEqual(shellcheck(preview), "");
  });
  it("its setup script is shellcheck-clean and reads the key from stdin", () => {
    const setup = ci[".flask-deploy"].before_script.join("\n");
    assert.strictEqual(shellcheck(setup), "");
    for (const line of setup.split("\n").filter((l: string) => /SSH_PRIVATE_KEY/.test(l) && /ssh-add/.test(l))) {
      assert.match(line, /ssh-add -t 3600 - /, line);
    }
    assert.match(setup, /file:\/\/\*\|""\)/, "a file backend on the runner is refused");
  });
});
