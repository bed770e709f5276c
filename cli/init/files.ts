// The files `flask-deploy init` writes into a Flask app's repository, and the rule it keeps: a file
// that exists is never overwritten (it is reported as left). Two files are added to, never changed:
// .gitignore gets the lines it lacks, package.json the dependencies it lacks.
import * as fs from "fs";
import * as path from "path";
import { Detected } from "./detect";

/** The versions a new program needs: this package, the SDK it shares with it, and TypeScript for `pulumi up`. */
export interface Versions { self: string; pulumi: string; typescript: string; tsNode: string; typesNode: string }

export interface InitResult {
  wrote: string[];
  /** Files that existed and were left as they are. */
  left: string[];
  /** Files that existed and got lines or keys they lacked (what was added). */
  added: { file: string; what: string[] }[];
}

const GITIGNORE = ["node_modules/", ".fdeploy-staging/", ".env"];

export function programFiles(d: Detected): Record<string, string> {
  const settings = [
    `  flask-deploy:appName: ${d.appName}`,
    `  flask-deploy:appDir: ${d.appDir}`,
    `  flask-deploy:appModule: ${yamlString(d.appModule)}`,
    `  flask-deploy:migrationsDir: ${d.migrationsDir}`,
    ...(d.staticDir ? ["  flask-deploy:static:", `    /static/: ${d.staticDir}`] : []),
    ...(d.releaseCommands.length ? ["  flask-deploy:releaseCommands:", ...d.releaseCommands.map((c) => `    - ${yamlString(c)}`)] : []),
  ];
  const stackFile = (stack: string, strategy: string, workers: number) => [
    `# ${stack}: flask-deploy's settings for this app (its README: "Configuration"). Point it at your server:`,
    `#   pulumi config set --stack ${stack} --path flask-deploy:server.host HOST`,
    `#   ssh-keyscan -t ed25519 HOST | pulumi config set --stack ${stack} --path flask-deploy:server.hostKey`,
    `#   (server.user: root, else a sudo user; server.privateKeyPath: else your ssh-agent)`,
    `# and give the app its secret (read from stdin, never on a command line):`,
    `#   python3 -c 'import secrets; print(secrets.token_hex(32))' | pulumi config set --stack ${stack} --secret --path flask-deploy:secrets.SECRET_KEY`,
    "config:",
    ...settings,
    `  flask-deploy:strategy: ${strategy}`,
    `  flask-deploy:workers: "${workers}"`,
    "",
  ].join("\n");
  return {
    "Pulumi.yaml": [
      `name: ${d.appName}`,
      `description: Deploys ${d.appName} (Flask, Gunicorn, nginx, SQLite) with flask-deploy`,
      "runtime: nodejs",
      "",
    ].join("\n"),
    "index.ts": [
      "// This app's deployment: one FlaskApp (flask-deploy), its settings from the stack's flask-deploy:* config",
      "// (Pulumi.<stack>.yaml). A program can hold several: new FlaskApp(\"api\", flaskAppArgs({ appName: \"api\", ... })).",
      "import { FlaskApp, flaskAppArgsFromConfig } from \"flask-deploy\";",
      "",
      "const app = new FlaskApp(\"app\", flaskAppArgsFromConfig());",
      "",
      ...["url", "releaseId", "appDirRelease", "server", "appPath", "schemaVersion", "migrationsDir", "strategy", "releaseHistory",
        "liveRelease", "running", "certificate"].map((k) => `export const ${k} = app.${k};`),
      "",
    ].join("\n"),
    "tsconfig.json": JSON.stringify({
      compilerOptions: { strict: true, target: "es2022", module: "commonjs", moduleResolution: "node", esModuleInterop: true, skipLibCheck: true },
      files: ["index.ts"],
    }, null, 2) + "\n",
    "Pulumi.dev.yaml": stackFile("dev", "restart", 2),
    "Pulumi.prod.yaml": stackFile("prod", "blue-green", 4),
  };
}

/** Writes the program's files into PROJECTDIR, adds what .gitignore and package.json lack; overwrites nothing. */
export function writeProgram(projectDir: string, d: Detected, v: Versions): InitResult {
  const result: InitResult = { wrote: [], left: [], added: [] };
  for (const [name, text] of Object.entries(programFiles(d))) {
    try {
      fs.writeFileSync(path.join(projectDir, name), text, { flag: "wx" });   // wx: fails if it exists
      result.wrote.push(name);
    } catch (e: any) {
      if (e.code !== "EEXIST") throw e;
      result.left.push(name);
    }
  }
  addGitignore(projectDir, result);
  addDependencies(projectDir, d.appName, v, result);
  return result;
}

function addGitignore(projectDir: string, result: InitResult): void {
  const file = path.join(projectDir, ".gitignore");
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
  const have = new Set((text ?? "").split("\n").map((l) => l.trim().replace(/^\//, "").replace(/\/$/, "")));
  const missing = GITIGNORE.filter((l) => !have.has(l.replace(/\/$/, "")));
  if (text === undefined) {
    fs.writeFileSync(file, missing.join("\n") + "\n", { flag: "wx" });
    result.wrote.push(".gitignore");
  } else if (missing.length) {
    fs.appendFileSync(file, (text === "" || text.endsWith("\n") ? "" : "\n") + missing.join("\n") + "\n");
    result.added.push({ file: ".gitignore", what: missing });
  } else {
    result.left.push(".gitignore");
  }
}

function addDependencies(projectDir: string, appName: string, v: Versions, result: InitResult): void {
  const file = path.join(projectDir, "package.json");
  const exists = fs.existsSync(file);
  const pkg = exists ? JSON.parse(fs.readFileSync(file, "utf8")) : { name: appName, private: true };
  const has = (n: string) => [pkg.dependencies, pkg.devDependencies, pkg.peerDependencies].some((deps) => deps && n in deps);
  const what: string[] = [];
  const add = (kind: "dependencies" | "devDependencies", n: string, version: string) => {
    if (has(n)) return;
    pkg[kind] = { ...(pkg[kind] ?? {}), [n]: version };
    what.push(`${n}@${version}`);
  };
  add("dependencies", "flask-deploy", `^${v.self}`);
  add("dependencies", "@pulumi/pulumi", `^${v.pulumi}`);
  // `pulumi up` compiles index.ts with these: a deploy from `npm ci --omit=dev` needs them
  add("dependencies", "typescript", `^${v.typescript}`);
  add("dependencies", "ts-node", `^${v.tsNode}`);
  add("devDependencies", "@types/node", `^${v.typesNode}`);
  if (!exists) {
    fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n", { flag: "wx" });
    result.wrote.push("package.json");
  } else if (what.length) {
    const indent = /^\{\n([ \t]+)/.exec(fs.readFileSync(file, "utf8"))?.[1] ?? 2;
    fs.writeFileSync(file, JSON.stringify(pkg, null, indent) + "\n");
    result.added.push({ file: "package.json", what });
  } else {
    result.left.push("package.json");
  }
}

/** A YAML scalar: plain when safe, else double-quoted (JSON's escaping is YAML's). */
function yamlString(s: string): string {
  return /^[A-Za-z0-9_./-][A-Za-z0-9_.:/ -]*$/.test(s) && !/:\s|\s$/.test(s) ? s : JSON.stringify(s);
}
