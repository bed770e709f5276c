// `flask-deploy init ARGS` run in-process in a folder, its output captured: the init tests' one way to run it.
import { main } from "../../cli/init/main";

/** `flask-deploy init ARGS` in DIR: exit code, stdout, stderr. */
export function runInit(dir: string, ...args: string[]): { code: number; out: string; err: string } {
  const cwd = process.cwd();
  const out: string[] = [], err: string[] = [];
  const w = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((s: string) => { out.push(s); return true; }) as any;
  process.stderr.write = ((s: string) => { err.push(s); return true; }) as any;
  try {
    process.chdir(dir);
    const code = main(["node", "flask-deploy", "init", ...args]);
    return { code, out: out.join(""), err: err.join("") };
  } finally {
    process.chdir(cwd);
    [process.stdout.write, process.stderr.write] = w;
  }
}
