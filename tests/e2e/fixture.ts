// A deployed app on a fresh test server: the common start of e2e suites.
import * as assert from "assert";
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
