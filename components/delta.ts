// What a release upload sends, and reading the app's files no more than needed.
// - scanFolder: the release id (hashFiles' hash) and the manifest (each file's sha256), with a stat
//   cache per app and kind (.fdeploy-staging/<key>/stat-<kind>.json: size, mtime, ctime, inode →
//   sha256, and the last trees' ids): an unchanged file is never read again; when no file changed
//   nothing is read at all. A file changed within the last seconds is not cached (its mtime may not
//   show a second change in the same tick).
// - uploadFolder: the upload of a release as only the files its base (the release the stack deployed
//   before, components/release-basis.ts) lacks and .fdeploy-delta.json ({base, manifest}); the server
//   assembles the release (fdeploy_agent/delta.py) and checks it against its id.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

export type Manifest = Record<string, string>;

interface CacheEntry { s: string; h: string }   // s: "size:mtimeNs:ctimeNs:ino"
interface StatCache { files: Record<string, CacheEntry>; trees: Record<string, string> }

const RACY_MS = 3000;
const KEPT_TREES = 8;

export interface Scan {
  /** hashFiles' hash of the files (the release id). */
  hash: string;
  manifest: Manifest;
  /** Files whose content was read (0: every file's stat matched the cache). */
  read: number;
}

function statKey(p: string): { key: string; mtimeMs: number } {
  const st = fs.statSync(p, { bigint: true });
  return { key: `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`, mtimeMs: Number(st.mtimeMs) };
}

function loadCache(file: string): StatCache {
  try {
    const c = JSON.parse(fs.readFileSync(file, "utf8"));
    if (c && typeof c.files === "object" && typeof c.trees === "object") return c;
  } catch {
    // none yet, or unreadable: start over
  }
  return { files: {}, trees: {} };
}

function saveCache(file: string, c: StatCache): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  fs.writeFileSync(tmp, JSON.stringify(c));
  fs.renameSync(tmp, file);
}

/** The id and manifest of DIR's FILES; CACHE (a file path) spares reading what did not change. */
export function scanFolder(dir: string, files: string[], cache?: string): Scan {
  const c = cache ? loadCache(cache) : { files: {}, trees: {} };
  const now = Date.now();
  const stats = files.map((f) => statKey(path.join(dir, f)));
  const sig = crypto.createHash("sha256");
  files.forEach((f, i) => sig.update(f).update("\0").update(stats[i].key).update("\0"));
  const treeKey = sig.digest("hex");
  const manifest: Manifest = {};
  const cached = (f: string, i: number) => (c.files[f] && c.files[f].s === stats[i].key ? c.files[f].h : undefined);
  let hash = c.trees[treeKey];
  let read = 0;
  if (hash && files.every((f, i) => cached(f, i))) {
    files.forEach((f, i) => { manifest[f] = cached(f, i)!; });
  } else {
    // the id hashes every file's content in order: a change anywhere means reading them all once
    const tree = crypto.createHash("sha256");
    for (const f of files) {
      const data = fs.readFileSync(path.join(dir, f));
      read++;
      tree.update(f).update("\0").update(data).update("\0");
      manifest[f] = crypto.createHash("sha256").update(data).digest("hex");
    }
    hash = tree.digest("hex").slice(0, 12);
  }
  if (cache) {
    const next: StatCache = { files: {}, trees: {} };
    let racy = false;
    files.forEach((f, i) => {
      if (now - stats[i].mtimeMs < RACY_MS) racy = true;
      else next.files[f] = { s: stats[i].key, h: manifest[f] };
    });
    const kept = Object.entries(c.trees).filter(([k]) => k !== treeKey).slice(-(KEPT_TREES - 1));
    next.trees = Object.fromEntries(racy ? kept : [...kept, [treeKey, hash]]);
    if (JSON.stringify(next) !== JSON.stringify(c) || !fs.existsSync(cache)) saveCache(cache, next);
    else fs.utimesSync(cache, new Date(), new Date());
  }
  return { hash, manifest, read };
}

/** The base an upload builds on and the files it carries (components/release-basis.ts); {}: the whole folder. */
export interface BasePlan { base?: string; need?: string[] }

export const DELTA_FILE = ".fdeploy-delta.json";

/** Which folder uploads the release: the full staged copy (FULL, ending in '/'), or, when the
 * server has a base, a delta folder beside it holding .fdeploy-delta.json and the needed files
 * (hard links to FULL's: nothing is copied). Its name is a hash of what it holds, so the same
 * plan always gives the same folder (a second up changes nothing). */
export function uploadFolder(full: string, manifest: Manifest, plan: BasePlan): { source: string; bytes: number; files: number } {
  // bytes: what the folder holds (the files sent, and the delta's manifest)
  const bytesOf = (rels: string[]) => rels.reduce((n, f) => n + fs.statSync(path.join(full, f)).size, 0);
  if (!plan.base) {
    const all = Object.keys(manifest);
    return { source: full, bytes: bytesOf(all), files: all.length };
  }
  const need = (plan.need ?? []).filter((f) => f in manifest).sort();
  const meta = JSON.stringify({ base: plan.base, manifest: Object.fromEntries(Object.keys(manifest).sort().map((f) => [f, manifest[f]])) });
  const h = crypto.createHash("sha256").update(meta);
  for (const f of need) h.update("\0").update(f).update("\0").update(manifest[f]);
  const dir = path.join(path.dirname(full.replace(/\/$/, "")), `delta-${h.digest("hex").slice(0, 16)}`);
  if (!fs.existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
    fs.mkdirSync(tmp, { recursive: true });
    fs.writeFileSync(path.join(tmp, DELTA_FILE), meta + "\n");
    for (const f of need) {
      fs.mkdirSync(path.dirname(path.join(tmp, f)), { recursive: true });
      fs.linkSync(path.join(full, f), path.join(tmp, f));
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (e: any) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (!fs.existsSync(dir)) throw e;
    }
  }
  const now = new Date();
  fs.utimesSync(dir, now, now);
  return { source: `${dir}/`, bytes: bytesOf(need) + Buffer.byteLength(meta) + 1, files: need.length };
}

/** A short hash of a manifest (the Release's output; the manifest itself is in the -basis step's state). */
export function manifestHash(m: Manifest): string {
  return crypto.createHash("sha256").update(JSON.stringify(Object.keys(m).sort().map((f) => [f, m[f]]))).digest("hex").slice(0, 16);
}
