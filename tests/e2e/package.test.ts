// The package as a user gets it: `npm pack`, then a fresh folder outside the repo holding only the
// sample Flask app (and its migrations), `npm install <tarball>`, `npx flask-deploy init`, the three
// commands init prints (with this test server for HOST; deployed from `npm ci --omit=dev`), and `pulumi up`: the app serves, a second up
// changes nothing, `npx fdeploy status` works there; then a second FlaskApp added to the program
// deploys beside the first on the same server, and both serve.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { tempDir } from "../tmpdir";
import { changed, isolatedEnv, PROJECT_DIR } from "./pulumi";

describe("the npm package in a user's own app repo", function () {
  this.timeout(900000);
  let server: TestServer;
  let project: string;
  let env: NodeJS.ProcessEnv;
  let initOutput: string;

  /** COMMAND (argv) in the user's project; throws with its output unless it exits 0. */
  const run = (argv: string[], opts: { input?: string; ok?: boolean } = {}) => {
    const r = spawnSync(argv[0], argv.slice(1), { cwd: project, env, encoding: "utf8", input: opts.input, maxBuffer: 64 * 1024 * 1024 });
    const output = (r.stdout ?? "") + (r.stderr ?? "");
    if (opts.ok !== false && r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status}):\n${output.split("\n").slice(-60).join("\n")}`);
    return { status: r.status ?? -1, stdout: r.stdout ?? "", output };
  };
  const up = () => run(["pulumi", "up", "--yes", "--skip-preview", "--stack", "dev", "--non-interactive"]);
  const outputs = () => JSON.parse(run(["pulumi", "stack", "output", "--json", "--stack", "dev"]).stdout);
  // one request for HOST's site (fetch does not send a Host header of its own choosing)
  const page = (host: string, p: string) => new Promise<{ status: number; text: string; json(): any }>((resolve, reject) => {
    http.get({ host: server.host, port: 80, path: p, headers: { host, connection: "close" }, timeout: 10000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, json: () => JSON.parse(text) }));
    }).on("error", reject);
  });

  before(() => {
    server = startServer("pk-package", 185);
    const tmp = tempDir("fdeploy-e2e-package-");
    // the tarball exactly as `npm publish` would upload it (prepack builds dist/)
    const pack = spawnSync("npm", ["pack", "--pack-destination", tmp, "--json", "--loglevel=error"], { cwd: PROJECT_DIR, encoding: "utf8" });
    assert.strictEqual(pack.status, 0, pack.stderr);
    const packed = JSON.parse(pack.stdout)[0];
    const files: string[] = packed.files.map((f: any) => f.path);
    assert.deepStrictEqual(files.filter((f) => /^(tests|bench|app|migrations|toolchain|docs)\/|\.test\.|__pycache__|fixtures|\.ts$/.test(f) && !f.endsWith(".d.ts")), [],
      "the package holds no tests, fixtures, bench or sources");
    for (const f of ["dist/components/index.js", "dist/components/index.d.ts", "dist/cli/init/main.js", "components/scripts/agent/__main__.py", "cli/fdeploy"]) {
      assert.ok(files.includes(f), f);
    }
    // the user's repository: only their Flask app (the sample app and its SQL migrations), outside this repo
    project = path.join(tmp, "notes");
    fs.mkdirSync(project);
    for (const d of ["app", "migrations"]) {
      fs.cpSync(path.join(PROJECT_DIR, d), path.join(project, d), { recursive: true, filter: (s) => !s.includes("__pycache__") });
    }
    env = { ...isolatedEnv(path.join(tmp, "state")), npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
    fs.mkdirSync(path.join(tmp, "state"));
    run(["npm", "install", "--loglevel=error", path.join(tmp, packed.filename)]);
    initOutput = run(["npx", "flask-deploy", "init"]).stdout;
  });

  it("init detects the app, writes the program and prints the next three commands", () => {
    for (const f of ["Pulumi.yaml", "index.ts", "Pulumi.dev.yaml", "Pulumi.prod.yaml", ".gitignore"]) assert.ok(fs.existsSync(path.join(project, f)), f);
    const dev = fs.readFileSync(path.join(project, "Pulumi.dev.yaml"), "utf8");
    assert.match(dev, /flask-deploy:appDir: app\n/);
    assert.match(dev, /flask-deploy:appModule: wsgi:app\n/);
    assert.match(dev, /flask-deploy:migrationsDir: migrations\n/);
    assert.match(dev, /\/static\/: static\n/);
    const pkg = JSON.parse(fs.readFileSync(path.join(project, "package.json"), "utf8"));
    assert.match(pkg.dependencies["flask-deploy"], /^file:/, "the installed tarball is kept");
    assert.ok(pkg.dependencies.typescript && pkg.dependencies["@pulumi/pulumi"]);
    assert.match(initOutput, /added to package\.json: @pulumi\/pulumi/);
    // a second init changes no file
    const before = fs.readdirSync(project).filter((f) => !fs.statSync(path.join(project, f)).isDirectory())
      .map((f) => [f, fs.readFileSync(path.join(project, f), "utf8")]);
    const again = run(["npx", "flask-deploy", "init"]).stdout;
    for (const [f, text] of before) assert.strictEqual(fs.readFileSync(path.join(project, f), "utf8"), text, f);
    assert.match(again, /left index\.ts \(it exists; nothing changed\)/);
  });

  it("the printed commands (HOST: the test server) deploy the app: it serves", async () => {
    const next = initOutput.split("\n").slice(initOutput.split("\n").findIndex((l) => l.startsWith("Next")) + 1).map((l) => l.trim()).filter(Boolean);
    assert.strictEqual(next.length, 3, initOutput);
    const bash = (line: string) => run(["bash", "-c", `set -o pipefail; ${line}`]);
    bash(next[0]);
    // deploy from production dependencies only, as a CI runner would (init put TypeScript among them)
    fs.rmSync(path.join(project, "node_modules"), { recursive: true });
    run(["npm", "ci", "--omit=dev", "--loglevel=error"]);
    bash(next[1].replace(/\bHOST\b/g, server.host));
    run(["pulumi", "config", "set", "--stack", "dev", "--path", "flask-deploy:server.privateKeyPath"], { input: server.keyPath });   // the test key, not an ssh-agent
    const [secret, upCmd] = next[2].split(" && ");
    assert.strictEqual(upCmd, "pulumi up");
    bash(secret);
    const r = up();
    assert.match(r.output, /Resources:/);
    const out = outputs();
    const health = await page("notes.example", "/health");
    assert.strictEqual(health.status, 200, health.text);
    assert.strictEqual(health.json().release, out.releaseId);
    assert.strictEqual(out.url, `http://${server.host}/`);
    assert.ok(fs.readdirSync(path.join(project, ".fdeploy-staging")).length > 0, "staged beside the user's Pulumi.yaml");
    assert.ok(!fs.existsSync(path.join(project, "node_modules", "flask-deploy", ".fdeploy-staging")), "never inside node_modules");
  });

  it("a second up changes nothing", () => {
    const r = up();
    assert.deepStrictEqual(changed(r.output), []);
    assert.doesNotMatch(r.output, /(created|updated|replaced)/);
  });

  it("npx fdeploy status works in the user's project", () => {
    const r = run(["npx", "fdeploy", "status", "--stack", "dev", "--json"]);
    const st = JSON.parse(r.stdout);
    assert.strictEqual(st.app, "notes");
    assert.strictEqual(st.release, outputs().releaseId);
    assert.strictEqual(st.health.ok, true, r.stdout);
  });

  it("a second FlaskApp added to the program deploys beside the first; both serve", async () => {
    const index = path.join(project, "index.ts");
    fs.writeFileSync(index, [
      "import * as pulumi from \"@pulumi/pulumi\";",
      "import { flaskAppArgs } from \"flask-deploy\";",
      fs.readFileSync(index, "utf8"),
      "const srv = new pulumi.Config(\"flask-deploy\").requireObject<{ host: string }>(\"server\");",
      "const blog = new FlaskApp(\"blog\", flaskAppArgs({",
      "  appName: \"blog\", server: srv, serverName: \"blog.test\", appDir: \"app\", migrationsDir: \"migrations\", workers: \"1\",",
      "  env: { APP_GREETING: \"Hello from blog\" }, secrets: { SECRET_KEY: \"blog-secret\" },",
      "}));",
      "export const blogRelease = blog.releaseId;",
      "",
    ].join("\n"));
    const r = up();
    assert.doesNotMatch(r.output, /(updated|replaced|deleted)/, "the first app is left as it is");
    const out = outputs();
    const blog = await page("blog.test", "/health");
    assert.strictEqual(blog.status, 200, blog.text);
    assert.strictEqual(blog.json().release, out.blogRelease);
    assert.match((await page("blog.test", "/")).text, /Hello from blog/);
    const first = await page("notes.example", "/health");
    assert.strictEqual(first.status, 200, first.text);
    assert.strictEqual(first.json().release, out.releaseId);
    assert.match(server.ssh("getent passwd notes blog | cut -d: -f1 | sort | tr '\\n' ' '"), /^blog notes $/);
    assert.strictEqual(fs.readdirSync(path.join(project, ".fdeploy-staging")).filter((d) => /^[0-9a-f]{16}$/.test(d)).length, 2);
  });
});
