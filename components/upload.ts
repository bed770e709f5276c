// Uploads of folders (the remote scripts, a release, the migrations), made the way the official
// command plugin accepts them: CopyToRemote takes only a FileAsset, a StringAsset or a FileArchive
// that is a path on disk (remote/copyController.go), so each folder is first staged as real files in
// a content-addressed folder, and that path is the upload's source.
//
// - Content-addressed: a folder's hash (its relative paths and contents) names the staged copy and
//   the remote folder, so unchanged files upload nothing and changed files upload a new folder.
// - Staged per app under .fdeploy-staging/<key>/ (git-ignored; key: stagingKey(), one per FlaskApp
//   of a stack) beside the program's Pulumi.yaml; a staged copy is written under a
//   temporary name and renamed, so parallel runs never see half a folder; entries no run has used
//   for STALE_MS are removed.
// - The target host and its host key are in the upload's triggers: the plugin re-copies only when
//   the source or the remote path changes, so a stack aimed at a new server (a rebuilt VPS, also at
//   the same address) must replace the upload.
// - The plugin never sets file modes (new files are 0666 & ~umask): scripts run as `bash x.sh` and
//   nothing secret is ever uploaded this way.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Connection } from "./connection";
import { Shipping, shippingList } from "./ship-rules";
import { Manifest, scanFolder } from "./delta";

/** Where staged copies live: beside the user's Pulumi.yaml (the program's working directory, never the
 * package's folder, which may be inside node_modules), git-ignored. */
export const STAGING_ROOT = path.resolve(process.cwd(), ".fdeploy-staging");

/** The staging folder's name for one FlaskApp: a hash of its project, stack and name (what its URN is made of), so
 * two apps of one stack, or one app name in two stacks, never share staged files. */
export function stagingKey(name: string, project: string = pulumi.getProject(), stack: string = pulumi.getStack()): string {
  return crypto.createHash("sha256").update(`${project}\0${stack}\0${name}`).digest("hex").slice(0, 16);
}

/** A staged entry unused for this long is removed by the next run of the same stack. */
const STALE_MS = 60 * 60 * 1000;

/** The files of DIR that are shipped (components/ship-rules.ts). */
export function listFiles(dir: string): string[] {
  return shippingList(dir).files;
}

/** sha256 over the relative paths and contents, first 12 hex chars (release.sh checks the same). */
export function hashFiles(dir: string, files: string[] = listFiles(dir)): string {
  const h = crypto.createHash("sha256");
  for (const f of files) {
    h.update(f).update("\0").update(fs.readFileSync(path.join(dir, f))).update("\0");
  }
  return h.digest("hex").slice(0, 12);
}

export interface StagedFolder extends Shipping {
  hash: string;
  /** The staged copy, with a trailing slash: the plugin then copies its contents into remotePath. */
  source: string;
  /** Each file's sha256 (components/delta.ts). */
  manifest: Manifest;
  /** How many files were read (the stat cache spares unchanged ones). */
  read: number;
}

/** Copy DIR's shipped files to STAGING_ROOT/<key>/<kind>-<hash>/ (once) and mark it as used.
 * Each file's content is copied once into <key>/objects/ (named by its sha256 and mode); a staged
 * folder is hard links to those, so staging a change copies only the changed files. */
export function stageFolder(dir: string, kind: string, key: string = pulumi.getStack(), root: string = STAGING_ROOT): StagedFolder {
  const shipping = shippingList(dir);
  const files = shipping.files;
  const stackDir = path.join(root, key);
  const scan = scanFolder(dir, files, path.join(stackDir, `stat-${kind}.json`));
  const hash = scan.hash;
  const staged = path.join(stackDir, `${kind}-${hash}`);
  if (!fs.existsSync(staged)) {
    const objects = path.join(stackDir, "objects");
    fs.mkdirSync(objects, { recursive: true });
    const tmp = `${staged}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
    for (const f of files) {
      const src = path.join(dir, f);
      const object = path.join(objects, `${scan.manifest[f]}-${(fs.statSync(src).mode & 0o777).toString(8)}`);
      if (!fs.existsSync(object)) {
        const part = `${object}.tmp-${process.pid}`;
        fs.copyFileSync(src, part);
        fs.renameSync(part, object);
      }
      fs.mkdirSync(path.dirname(path.join(tmp, f)), { recursive: true });
      fs.linkSync(object, path.join(tmp, f));
    }
    fs.mkdirSync(tmp, { recursive: true }); // an empty folder too
    try {
      fs.renameSync(tmp, staged);
    } catch (e: any) {
      fs.rmSync(tmp, { recursive: true, force: true }); // another run staged the same content first
      if (!fs.existsSync(staged)) throw e;
    }
  }
  const now = new Date();
  fs.utimesSync(staged, now, now);
  pruneStaging(stackDir, now.getTime());
  return { ...shipping, hash, source: `${staged}/`, manifest: scan.manifest, read: scan.read };
}

/** Remove entries (and abandoned temporary copies) that no run has used for STALE_MS, then the
 * objects no staged folder links any more. */
function pruneStaging(stackDir: string, now: number): void {
  for (const name of fs.readdirSync(stackDir)) {
    const p = path.join(stackDir, name);
    if (name === "objects") continue;
    try {
      if (now - fs.statSync(p).mtimeMs > STALE_MS) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // removed meanwhile by a parallel run
    }
  }
  const objects = path.join(stackDir, "objects");
  for (const name of fs.existsSync(objects) ? fs.readdirSync(objects) : []) {
    try {
      const st = fs.statSync(path.join(objects, name));   // a link made or removed changes ctime
      if (st.nlink === 1 && now - st.ctimeMs > 60_000) fs.rmSync(path.join(objects, name), { force: true });
    } catch {
      // removed meanwhile by a parallel run
    }
  }
}

export interface FolderUploadArgs {
  connection: Connection;
  staged: StagedFolder;
  /** What is sent, when not the staged copy (a delta upload, components/delta.ts). */
  source?: pulumi.Input<string>;
  /** The remote folder the staged files land in (relative: under the SSH user's home). */
  remotePath: string;
}

/** The server an upload goes to: the host and its pinned host key (a rebuilt server at the same address
 * has a new one); never the (secret) private key. */
export function uploadTarget(c: Connection): pulumi.Output<string> {
  return pulumi.interpolate`${c.user ?? "root"}@${c.host}:${c.port ?? 22} ${c.hostKey ?? ""}`;
}

/** CopyToRemote of a staged folder; a new hash or a new target host replaces (re-copies) it. */
export function folderUpload(name: string, args: FolderUploadArgs, opts: pulumi.CustomResourceOptions): command.remote.CopyToRemote {
  const host = uploadTarget(args.connection);
  return new command.remote.CopyToRemote(name, {
    connection: args.connection,
    source: args.source === undefined ? new pulumi.asset.FileArchive(args.staged.source) : pulumi.output(args.source).apply((s) => new pulumi.asset.FileArchive(s)),
    remotePath: args.remotePath,
    triggers: [args.staged.hash, host],
  }, opts);
}
