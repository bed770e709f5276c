// A deployed app on a fresh test server: the common start of e2e suites.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { copyApp, copyMigrations } from "./app-copy";
import { TestStack } from "./pulumi";

export interface Deployment {
  server: TestServer;
  stack: TestStack;
  app: ReturnType<typeof copyApp>;
  migrations: ReturnType<typeof copyMigrations>;
  /** http://<server> */
  base: string;
}

/** Boot server NAME at OCTET, deploy working copies of the sample app and its migrations to it. */
export function deployFresh(name: string, octet: number, settings: Record<string, string> = {}): Deployment {
  const server = startServer(name, octet);
  const app = copyApp(name);
  const migrations = copyMigrations(name);
  const stack = new TestStack(name);
  stack.target(server, { appDir: app.rel, migrationsDir: migrations.rel, ...settings });
  stack.setConfig("secrets.SECRET_KEY", `${name}-test-secret`, { secret: true });
  const r = stack.up();
  assert.strictEqual(r.status, 0, r.output);
  return { server, stack, app, migrations, base: `http://${server.host}` };
}

/** `systemd-analyze security UNIT` on the server: the overall exposure (0 safest … 10) and its rating. */
export function unitExposure(server: TestServer, unit: string): { exposure: number; rating: string } {
  const out = server.ssh(`systemd-analyze security --no-pager ${unit} | tail -n 1`);
  const m = /Overall exposure level for \S+: (\d+\.\d+) (\S+)/.exec(out);
  assert.ok(m, `unexpected systemd-analyze output: ${out}`);
  return { exposure: Number(m![1]), rating: m![2] };
}

/**
 * Every service unit of APP the project wrote on SERVER (/etc/systemd/system/fdeploy-APP*.service;
 * a template through an instance) with its exposure, appended as rows "| unit | exposure |" to
 * .e2e/reports/unit-exposure.md (under a heading naming SUITE) and printed. Timers and sockets have
 * no rating (systemd-analyze security rates services only).
 */
export function unitExposures(server: TestServer, app: string, suite: string): { unit: string; exposure: number }[] {
  const files = server.ssh(`cd /etc/systemd/system && ls -1 fdeploy-${app}[@-]*.service`).trim().split("\n");
  const units = files.map((f) => f.replace(/@\.service$/, "@main.service"));
  const rows = units.map((unit) => ({ unit, exposure: unitExposure(server, unit).exposure }));
  const text = [`\n## ${suite} (${new Date().toISOString()})\n`, "| unit | exposure |", "|---|---|",
    ...rows.map((r) => `| ${r.unit} | ${r.exposure} |`)].join("\n") + "\n";
  const dir = path.join(__dirname, "../../.e2e/reports");
  fs.mkdirSync(dir, { recursive: true });
  fs.appendFileSync(path.join(dir, "unit-exposure.md"), text);
  console.log(text);
  return rows;
}

/** Assert every service unit of APP on SERVER scores at most 2.5 (unitExposures records them). */
export function assertUnitExposures(server: TestServer, app: string, suite: string): void {
  const rows = unitExposures(server, app, suite);
  const bad = rows.filter((r) => !(r.exposure <= 2.5));
  assert.ok(bad.length === 0, `systemd-analyze security: exposure above 2.5 (goal <= 2.5): ${bad.map((r) => `${r.unit} ${r.exposure}`).join(", ")}`);
}
