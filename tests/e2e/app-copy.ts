// Working copies of the sample app for e2e tests, inside the project (.e2e/, git-ignored) because
// appDir must be a relative path in the project.
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "./pulumi";

export function copyApp(name: string): { dir: string; rel: string; edit(file: string, f: (s: string) => string): void } {
  const rel = path.join(".e2e", name, "app");
  const dir = path.join(PROJECT_DIR, rel);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.cpSync(path.join(PROJECT_DIR, "app"), dir, { recursive: true, filter: (src) => !src.includes("__pycache__") });
  return {
    dir, rel,
    edit(file, f) {
      const p = path.join(dir, file);
      fs.writeFileSync(p, f(fs.readFileSync(p, "utf8")));
    },
  };
}

export function copyMigrations(name: string): { dir: string; rel: string } {
  const rel = path.join(".e2e", name, "migrations");
  const dir = path.join(PROJECT_DIR, rel);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(path.join(PROJECT_DIR, "migrations"), dir, { recursive: true });
  return { dir, rel };
}

/** One request on a connection of its own, like a new visitor: a kept-alive one could be reused just
 * as nginx closes it (a reload closes idle connections; a synchronous pulumi run in between keeps the
 * client's idle timer from discarding it first), which is the client's race, not a failed request. */
export async function get(url: string, init?: RequestInit): Promise<{ status: number; text: string; json(): any }> {
  const headers = new Headers(init?.headers);
  headers.set("connection", "close");
  const r = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  return { status: r.status, text, json: () => JSON.parse(text) };
}
