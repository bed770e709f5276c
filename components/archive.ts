// Content-addressed file sets: the files of a folder (minus caches and local clutter), their
// combined hash, and a Pulumi AssetArchive of them. A release's id is this hash, so unchanged code
// produces the same id and Pulumi sees nothing to do.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

/** Never shipped: virtualenvs, caches, VCS folders, local databases and local .env files. */
const IGNORED = [/^\.venv$/, /^venv$/, /^__pycache__$/, /^\.git$/, /^\.pytest_cache$/, /^node_modules$/, /\.pyc$/, /^\.env$/, /\.sqlite3?$/, /^\.DS_Store$/];

export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (IGNORED.some((re) => re.test(entry.name))) continue;
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(r);
      else if (entry.isFile()) out.push(r);
    }
  };
  walk("");
  return out.sort();
}

/** sha256 over the relative paths and contents, first 12 hex chars. */
export function hashFiles(dir: string, files: string[] = listFiles(dir)): string {
  const h = crypto.createHash("sha256");
  for (const f of files) {
    h.update(f).update("\0").update(fs.readFileSync(path.join(dir, f))).update("\0");
  }
  return h.digest("hex").slice(0, 12);
}

export interface FileSet {
  hash: string;
  files: string[];
  archive: pulumi.asset.AssetArchive;
}

/** The folder as a FileSet; `extra` adds other folders under a prefix (e.g. migrations/). */
export function fileSet(dir: string): FileSet {
  const files = listFiles(dir);
  const assets: Record<string, pulumi.asset.Asset> = {};
  for (const f of files) assets[f] = new pulumi.asset.FileAsset(path.join(dir, f));
  return { hash: hashFiles(dir, files), files, archive: new pulumi.asset.AssetArchive(assets) };
}
