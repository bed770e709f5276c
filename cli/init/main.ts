#!/usr/bin/env node
// flask-deploy — the package's own command (`npx flask-deploy init`): turns a Flask app's repository
// into a Pulumi program that deploys it (cli/init/files.ts), from what it detects (cli/init/detect.ts);
// with --ci, the CI pipelines too (cli/init/ci.ts).
import * as fs from "fs";
import * as path from "path";
import { Command, CommanderError, Option } from "commander";
import { CI_PROVIDERS, CiProvider, ciReport, writeCi } from "./ci";
import { detect, Detected, InitError } from "./detect";
import { InitResult, Versions, writeProgram } from "./files";

/** This package's version and the versions it is built and tested with (its package.json). */
export function versions(): Versions {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), "package.json"), "utf8"));
  const v = { ...pkg.dependencies, ...pkg.devDependencies };
  return { self: pkg.version, pulumi: v["@pulumi/pulumi"], typescript: v.typescript, tsNode: v["ts-node"], typesNode: v["@types/node"] };
}

/** This package's folder (the repository, or node_modules/flask-deploy): the first with a package.json above this file. */
export function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return dir;
}

export function report(d: Detected, r: InitResult): string {
  const lines = [
    `app: ${d.appDir === "." ? "this folder" : d.appDir} (${d.requirements}), Gunicorn target ${d.appModule}`,
    `static: ${d.staticDir ? `${d.staticDir} at /static/` : "none (Flask serves its own route)"}`,
    `migrations: ${d.migrationsDir !== "none" ? `${d.migrationsDir} (SQL)` : d.releaseCommands.length ? `Flask-Migrate: ${d.releaseCommands[0]}` : "none"}`,
  ];
  if (!d.gunicorn) lines.push(`warning: ${d.requirements} does not list gunicorn; add it (e.g. gunicorn==23.0.0): the server runs the app with it`);
  if (d.appDir === ".") lines.push("note: appDir is this folder: its files ship with each release, the deploy's own too (list them in .fdeployignore to leave them out)");
  lines.push("");
  for (const f of r.wrote) lines.push(`wrote ${f}`);
  for (const a of r.added) lines.push(`added to ${a.file}: ${a.what.join(", ")}`);
  for (const f of r.left) lines.push(`left ${f} (it exists; nothing changed)`);
  lines.push("", "Next (HOST: your server's address; Pulumi.dev.yaml says more):",
    "  npm install && pulumi stack init dev",
    "  pulumi config set --path flask-deploy:server.host HOST && ssh-keyscan -t ed25519 HOST | pulumi config set --path flask-deploy:server.hostKey",
    "  python3 -c 'import secrets; print(secrets.token_hex(32))' | pulumi config set --secret --path flask-deploy:secrets.SECRET_KEY && pulumi up",
    "");
  return lines.join("\n");
}

export function main(argv: string[]): number {
  const program = new Command("flask-deploy").exitOverride().showHelpAfterError()
    .description("Deploy a Flask app to your own server with Pulumi");
  program.command("init")
    .description("write a Pulumi program that deploys the Flask app in this folder (never overwrites a file)")
    .option("--app-dir <dir>", "the app's folder (the one with requirements.txt; default: detected)")
    .option("--module <target>", "Gunicorn's target, e.g. wsgi:app or pkg:create_app() (default: detected)")
    .option("--name <appName>", "the app's name on the server (default: this folder's name)")
    .addOption(new Option("--ci <provider>", "also write the CI pipelines: preview on pull requests, up on main, prod behind an approval")
      .choices(CI_PROVIDERS))
    .option("--force", "with --ci: replace CI files that exist (the program's files are never overwritten)")
    .action((o: { appDir?: string; module?: string; name?: string; ci?: CiProvider; force?: boolean }) => {
      if (o.force && !o.ci) throw new InitError("--force replaces only the CI files: use it with --ci github|gitlab");
      const projectDir = process.cwd();
      const d = detect(projectDir, { appDir: o.appDir, appModule: o.module, appName: o.name });
      process.stdout.write(report(d, writeProgram(projectDir, d, versions())));
      if (o.ci) process.stdout.write(ciReport(o.ci, writeCi(projectDir, packageRoot(), o.ci, !!o.force), !!o.force));
    });
  try {
    program.parse(argv);
    return 0;
  } catch (e: any) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof InitError) {
      process.stderr.write(`flask-deploy init: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) process.exitCode = main(process.argv);
