// Every number the README quotes from a results file carries a marker naming that file, and the
// marked number is what the file says (issue #27). Checked: the section "## Benchmark…" (with its
// "How long a deploy takes") and the regions between `<!-- numbers checked: NAME -->` and
// `<!-- /numbers checked -->`. Markers (HTML comments, invisible on GitHub):
//   <!-- from FILE: TEXT -->      TEXT occurs in FILE; every number since the previous marker on the
//                                 line is one of TEXT's numbers
//   <!-- from FILE row: KEY -->   the same with the table row of FILE whose first cell is KEY
//   <!-- rows from FILE -->       on the line before a table: each row as `row: <its first cell>`
//   <!-- not a result: WHY -->    numbers that are not measurements (a design constant, a parameter)
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "../..");
const REQUIRED_REGIONS = ["docker-benchmark", "test-suite", "reliability"];

/** Numbers of a text: 1887, 9.6, 08; not inside words (p99, v2), code spans, link targets, commits, issue refs. */
export function numbers(text: string): string[] {
  const plain = text
    .replace(/`[^`]*`/g, " ")
    .replace(/\]\([^)]*\)/g, "]")
    .replace(/#\d+/g, " ")
    .replace(/\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b/g, " ");
  return plain.match(/(?<![A-Za-z\d.])\d+(?:\.\d+)?(?![A-Za-z\d])/g) ?? [];
}

const norm = (s: string) => s.replace(/\s+/g, " ").trim();
const cells = (line: string) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => norm(c.replace(/<!--.*?-->/g, "")));
const firstCell = (line: string) => cells(line)[0].replace(/[¹²³⁴]/g, "").trim();

const files = new Map<string, string>();
function read(rel: string): string {
  if (!files.has(rel)) {
    const p = path.join(ROOT, rel);
    if (!fs.existsSync(p)) throw new Error(`marker names ${rel}, which does not exist`);
    files.set(rel, fs.readFileSync(p, "utf8"));
  }
  return files.get(rel)!;
}

/** The numbers a marker vouches for, or an error message; null for "not a result". */
function source(marker: string): string[] | null {
  let m = /^not a result: (\S.*)$/.exec(marker);
  if (m) return null;
  m = /^from (\S+) row: (.+)$/.exec(marker);
  if (m) {
    const key = norm(m[2]);
    const row = read(m[1]).split("\n").find((l) => l.trim().startsWith("|") && firstCell(l) === key);
    if (!row) throw new Error(`${m[1]} has no table row '${key}'`);
    return numbers(row);
  }
  m = /^from (\S+?): (.+)$/.exec(marker);
  if (m) {
    if (!norm(read(m[1])).includes(norm(m[2]))) throw new Error(`${m[1]} does not contain "${norm(m[2])}"`);
    return numbers(m[2]);
  }
  throw new Error(`unknown marker <!-- ${marker} -->`);
}

/** The problems of one README text: numbers without a marker, numbers their file does not hold. */
export function check(readme: string): string[] {
  const lines = readme.split("\n");
  const problems: string[] = [];
  const regions = new Set<string>();
  let inBenchmark = false, region: string | undefined, rowsFrom: string | undefined;
  lines.forEach((line, i) => {
    const at = `README.md:${i + 1}`;
    if (/^## /.test(line)) inBenchmark = /^## Benchmark/.test(line);
    const open = /^\s*<!-- numbers checked: (\S+) -->\s*$/.exec(line);
    if (open) { region = open[1]; regions.add(region); return; }
    if (/^\s*<!-- \/numbers checked -->\s*$/.test(line)) { region = undefined; return; }
    const rows = /^\s*<!-- rows from (\S+) -->\s*$/.exec(line);
    if (rows) { rowsFrom = rows[1]; return; }
    if (!line.trim().startsWith("|")) rowsFrom = undefined;
    if (!inBenchmark && !region) return;
    if (/^\s*\|[-:| ]+\|\s*$/.test(line)) return;   // a table's delimiter row
    const parts = line.split(/<!--\s*(.*?)\s*-->/);   // text, marker, text, marker, …, text
    for (let k = 0; k < parts.length; k += 2) {
      const nums = numbers(parts[k]);
      // the markers right after this text (only blanks between them) vouch together
      const markers: string[] = [];
      while (k + 1 < parts.length) {
        markers.push(parts[k + 1]);
        if (k + 3 < parts.length && !parts[k + 2].trim()) k += 2;
        else break;
      }
      if (!markers.length && rowsFrom && line.trim().startsWith("|") && nums.length) markers.push(`from ${rowsFrom} row: ${firstCell(line)}`);
      if (!markers.length) {
        if (nums.length) problems.push(`${at}: ${nums.join(", ")} without a marker naming its results file`);
        continue;
      }
      let vouched: string[] | null = [];
      for (const m of markers) {
        try {
          const v = source(m);
          vouched = vouched === null || v === null ? null : [...vouched, ...v];
        } catch (e) {
          problems.push(`${at}: ${(e as Error).message}`);
        }
      }
      if (vouched === null) continue;
      const missing = nums.filter((n) => !vouched!.includes(n));
      if (missing.length) problems.push(`${at}: ${missing.join(", ")} not in its marker's source (${markers.join("; ")})`);
    }
  });
  if (!lines.some((l) => /^## Benchmark/.test(l))) problems.push("README.md has no section '## Benchmark…'");
  for (const r of REQUIRED_REGIONS) if (!regions.has(r)) problems.push(`README.md has no region <!-- numbers checked: ${r} -->`);
  return problems;
}

describe("README numbers (issue #27)", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

  it("every number quoted from a results file carries a marker and matches its file", () => {
    assert.deepStrictEqual(check(readme), []);
  });

  it("fails when a marked number differs from its file", () => {
    // the restart row's request count, one more than the results file says
    let wrong = "";
    const changed = readme.replace(/(\| Pulumi · restart \| 10 \| )(\d+) \|/, (_m, head: string, n: string) => `${head}${(wrong = String(Number(n) + 1))} |`);
    assert.notStrictEqual(changed, readme);
    assert.match(check(changed).join("\n"), new RegExp(`${wrong} not in its marker's source`));
  });

  it("fails when a number has no marker", () => {
    const added = readme.replace(/^## Benchmark.*$/m, (h) => `${h}\n\nIt took 42 s.`);
    assert.match(check(added).join("\n"), /42 without a marker/);
  });

  it("fails when a marker's quote or row is not in the file", () => {
    const bad = "## Benchmark\n\n9.6 s<!-- from bench/results/results.md: restart took 9.6 s -->\n12<!-- from bench/results/results.md row: no such row -->\n";
    const p = check(bad).join("\n");
    assert.match(p, /does not contain "restart took 9.6 s"/);
    assert.match(p, /has no table row 'no such row'/);
  });
});
