// Provenance of a results file (issue #27): the commit it ran on, when, the machine's load average
// (1/5/15 min, as uptime shows it) at start and end, and the other test servers up meanwhile (they
// share the CPUs). The generators (bench/speed.ts, bench/fail-fast.ts, bench/bench.ts via
// report.py, the reliability suite) write it into every result, so a re-run carries it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "../..");

export interface Provenance {
  /** git HEAD, "+dirty" when files outside bench/ differ from it */
  commit: string;
  start: string;
  end?: string;
  loadStart: number[];
  loadEnd?: number[];
  /** test servers up (tests/servers/testserver.sh list), other than the run's own */
  othersStart: string[];
  othersEnd?: string[];
}

/** The commit of the project tree: HEAD, with "+dirty" for uncommitted edits outside bench/. */
export function commitOf(dir = ROOT): string {
  const rev = spawnSync("git", ["-C", dir, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim() || "unknown";
  const dirty = spawnSync("git", ["-C", dir, "status", "--porcelain", "--", ".", ":!bench"], { encoding: "utf8" }).stdout.trim();
  return dirty ? `${rev}+dirty` : rev;
}

/** Test servers up on this machine (one folder each under the cache's servers/hosts), but OWN's. */
export function serversUp(own: (name: string) => boolean = () => false): string[] {
  const dir = path.join(process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy", "servers", "hosts");
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => !own(n)).sort() : [];
}

const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

export function provenanceStart(own?: (name: string) => boolean, dir?: string): Provenance {
  return { commit: commitOf(dir), start: new Date().toISOString(), loadStart: load(), othersStart: serversUp(own) };
}

export function provenanceEnd(p: Provenance, own?: (name: string) => boolean): Provenance {
  return Object.assign(p, { end: new Date().toISOString(), loadEnd: load(), othersEnd: serversUp(own) });
}

const when = (iso: string) => iso.slice(0, 16).replace("T", " ");
const loads = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" / ");
const servers = (xs: string[]) => `${xs.length}${xs.length ? ` (${xs.join(", ")})` : ""}`;

/** One markdown line: "Provenance: commit `…`, … UTC; load average (1/5/15 min) … at start, … at end; other test servers up: …". */
export function provenanceLine(p: Provenance): string {
  return `Provenance: commit \`${p.commit.slice(0, 12)}${p.commit.endsWith("+dirty") ? "` + uncommitted edits" : "`"}, ` +
    `${when(p.start)}${p.end ? ` – ${when(p.end)}` : ""} UTC; load average (1 / 5 / 15 min) ${loads(p.loadStart)} at start` +
    `${p.loadEnd ? `, ${loads(p.loadEnd)} at end` : ""}; other test servers up: ${servers(p.othersStart)} at start` +
    `${p.othersEnd ? `, ${servers(p.othersEnd)} at end` : ""}.`;
}
