// Offsite backups (backup.*, backupSecrets.*): defaults, the replica URL forms, the credentials
// each kind needs, and the Litestream config rendered from them (no secret in it).
import * as assert from "assert";
import { parseConfig, parseReplicaUrl, plaintextSecretNames } from "../../components/config";
import { renderLitestreamConfig } from "../../components/backup";
import { beforeChange } from "../../components/migrations";
import * as fs from "fs";
import * as path from "path";
import { HOST_KEY, PROJECT_DIR, rawConfig, refusal } from "./helpers";
import { tempDir } from "../tmpdir";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const SFTP = { replica: "sftp://backups@backup.example.com/var/backups/app", hostKey: HOST_KEY };

function parse(over: Record<string, unknown>, secret = ["secrets", "backupSecrets"]) {
  return parseConfig(rawConfig(over, secret), PROJECT_DIR);
}
function errorOf(over: Record<string, unknown>, secret = ["secrets", "backupSecrets"]): string {
  return refusal(() => parse(over, secret));
}

describe("backup config", () => {
  it("is off by default: no backup, no backupSecrets", () => {
    const cfg = parse({});
    assert.strictEqual(cfg.backup, undefined);
    assert.strictEqual(cfg.backupSecrets, undefined);
  });

  it("backup.hostKey takes what ssh-keyscan prints for the target; another host's key is refused, naming both", () => {
    const cfg = parse({ backup: { ...SFTP, hostKey: `backup.example.com ${HOST_KEY}` }, backupSecrets: { sftpKey: KEY } });
    assert.strictEqual(cfg.backup!.hostKey, HOST_KEY);
    assert.match(errorOf({ backup: { ...SFTP, hostKey: `[elsewhere.example.com]:2222 ${HOST_KEY}` }, backupSecrets: { sftpKey: KEY } }),
      /flask-deploy:backup\.hostKey: the key was scanned from elsewhere\.example\.com, not from backup\.example\.com/);
  });

  it("accepts an sftp replica with its key; defaults: 1 s sync, 72 h retention, auto, no extra databases", () => {
    const cfg = parse({ backup: SFTP, backupSecrets: { sftpKey: KEY } });
    assert.strictEqual(cfg.backup!.syncInterval, "1s");
    assert.strictEqual(cfg.backup!.retention, "72h");
    assert.strictEqual(cfg.backup!.litestream, "auto");
    assert.deepStrictEqual(cfg.backup!.databases, []);
  });

  it("accepts an s3 replica with endpoint, region and keys", () => {
    const cfg = parse({
      backup: { replica: "s3://my-bucket/prod/app", endpoint: "http://10.0.0.5:7070", region: "us-east-1", syncInterval: "5s" },
      backupSecrets: { accessKeyId: "AKIA", secretAccessKey: "s3cret" },
    });
    assert.strictEqual(cfg.backup!.syncInterval, "5s");
  });

  it("takes backup.takeover: the owner's id (32 hex digits), unset by default", () => {
    assert.strictEqual(parse({ backup: SFTP, backupSecrets: { sftpKey: KEY } }).backup!.takeover, undefined);
    const id = "0123456789abcdef0123456789abcdef";
    assert.strictEqual(parse({ backup: { ...SFTP, takeover: id }, backupSecrets: { sftpKey: KEY } }).backup!.takeover, id);
    assert.match(errorOf({ backup: { ...SFTP, retension: "1h" }, backupSecrets: { sftpKey: KEY } }), /known: .*takeover/);
  });

  it("backup.beforeChange: copy by default (the migrate step's inputs unchanged), replica only with backup.replica, naming both keys", () => {
    assert.strictEqual(parse({ backup: SFTP, backupSecrets: { sftpKey: KEY } }).backup!.beforeChange, "copy");
    assert.deepStrictEqual(beforeChange("copy"), {});
    assert.deepStrictEqual(beforeChange(undefined), {});
    const cfg = parse({ backup: { ...SFTP, beforeChange: "replica" }, backupSecrets: { sftpKey: KEY } });
    assert.deepStrictEqual(beforeChange(cfg.backup!.beforeChange), { BEFORE_CHANGE: "replica" });
    assert.match(errorOf({ backup: { beforeChange: "replica" } }),
      /flask-deploy:backup\.beforeChange: replica needs flask-deploy:backup\.replica \(the offsite replica whose restore point is the undo/);
    assert.match(errorOf({ backup: { ...SFTP, beforeChange: "snapshot" }, backupSecrets: { sftpKey: KEY } }),
      /flask-deploy:backup\.beforeChange: expected copy or replica/);
  });

  it("parses replica URLs", () => {
    assert.deepStrictEqual(parseReplicaUrl("sftp://u@h.example:2222/srv/b/"), { type: "sftp", user: "u", host: "h.example", port: 2222, path: "/srv/b" });
    assert.deepStrictEqual(parseReplicaUrl("s3://bucket"), { type: "s3", bucket: "bucket", path: "" });
    assert.deepStrictEqual(parseReplicaUrl("s3://bucket/a/b/"), { type: "s3", bucket: "bucket", path: "a/b" });
    for (const bad of ["ftp://u@h/x", "sftp://h/x", "sftp://u@h", "sftp://u@h/../x", "sftp://u@h/x;rm", "s3://B/x", "s3://bucket/../x", "sftp://u@h:99999/x"]) {
      assert.strictEqual(parseReplicaUrl(bad), undefined, bad);
    }
  });

  const bad: Array<[string, Record<string, unknown>, RegExp, string[]?]> = [
    ["a replica URL of another kind", { backup: { replica: "ftp://x/y" }, backupSecrets: { sftpKey: KEY } }, /backup\.replica: expected sftp:\/\/user@host/],
    ["an sftp replica without the target's host key", { backup: { replica: SFTP.replica }, backupSecrets: { sftpKey: KEY } }, /backup\.hostKey: required for an sftp/],
    ["an sftp replica without a key", { backup: SFTP }, /backupSecrets\.sftpKey: required for an sftp:\/\/ replica/],
    ["an s3 replica without keys", { backup: { replica: "s3://bucket/x" } }, /accessKeyId and secretAccessKey are required/],
    ["s3 keys for an sftp replica", { backup: SFTP, backupSecrets: { sftpKey: KEY, accessKeyId: "a" } }, /accessKeyId\/secretAccessKey are for an s3/],
    ["an endpoint for an sftp replica", { backup: { ...SFTP, endpoint: "https://s3.example.com" }, backupSecrets: { sftpKey: KEY } }, /backup\.endpoint: only for an s3/],
    ["backupSecrets set as plain config", { backup: SFTP, backupSecrets: { sftpKey: KEY } }, /backupSecrets: must be set as a secret/, ["secrets"]],
    ["backupSecrets without a replica", { backupSecrets: { sftpKey: KEY } }, /backupSecrets: set, but backup\.replica is not/],
    ["a key that is not a private key", { backup: SFTP, backupSecrets: { sftpKey: "ssh-ed25519 AAAA" } }, /backupSecrets\.sftpKey: expected an unencrypted SSH private key/],
    ["a bad sync interval", { backup: { ...SFTP, syncInterval: "1 second" }, backupSecrets: { sftpKey: KEY } }, /backup\.syncInterval: expected a duration/],
    ["a bad verify schedule", { backup: { ...SFTP, verifyEvery: "daily" }, backupSecrets: { sftpKey: KEY } }, /backup\.verifyEvery: expected a duration/],
    ["a bad retention", { backup: { ...SFTP, retention: "0h" }, backupSecrets: { sftpKey: KEY } }, /backup\.retention: expected a duration/],
    ["a database outside shared/", { backup: { ...SFTP, databases: ["../etc/x.sqlite3"] }, backupSecrets: { sftpKey: KEY } }, /backup\.databases\.0: expected a path inside shared/],
    ["an absolute database path", { backup: { ...SFTP, databases: ["/etc/x.sqlite3"] }, backupSecrets: { sftpKey: KEY } }, /backup\.databases\.0: expected a path inside shared/],
    ["the app's own database as an extra one", { backup: { ...SFTP, databases: ["db/app.sqlite3"] }, backupSecrets: { sftpKey: KEY } }, /backup\.databases: db\/app\.sqlite3 .* is always replicated/],
    ["an unknown litestream source", { backup: { ...SFTP, litestream: "apt" }, backupSecrets: { sftpKey: KEY } }, /backup\.litestream: expected auto, download or upload/],
    ["a takeover that is not a server id", { backup: { ...SFTP, takeover: "old-server" }, backupSecrets: { sftpKey: KEY } }, /backup\.takeover: expected the id of the server that owns the replica, as the refused deploy printed it \(32 hex digits/],
    ["a takeover id with upper-case digits", { backup: { ...SFTP, takeover: "0123456789ABCDEF0123456789ABCDEF" }, backupSecrets: { sftpKey: KEY } }, /backup\.takeover: expected the id/],
    ["a typo in a backup key", { backup: { ...SFTP, retension: "1h" }, backupSecrets: { sftpKey: KEY } }, /backup\.retension: unknown setting.*known: replica, hostKey/],
  ];
  for (const [what, over, re, secret] of bad) {
    it(`refuses ${what}`, () => assert.match(errorOf(over, secret), re));
  }

  it("finds backupSecrets stored in plaintext in the stack file", () => {
    const f = path.join(tempDir("fdeploy-unit-"), "Pulumi.x.yaml");
    fs.writeFileSync(f, "config:\n  flask-deploy:backupSecrets:\n    sftpKey: plain\n    accessKeyId:\n      secure: v1:abc\n");
    assert.deepStrictEqual(plaintextSecretNames(f), ["backupSecrets.sftpKey"]);
    const msg = (() => { try { parseConfig({ ...rawConfig({}, ["secrets"]), plaintextSecrets: ["backupSecrets.sftpKey"] }, PROJECT_DIR); } catch (e) { return (e as Error).message; } return ""; })();
    assert.match(msg, /flask-deploy:backupSecrets\.sftpKey: stored in plaintext/);
  });

  it("renders a Litestream config per database, without any secret", () => {
    const cfg = parse({ backup: { ...SFTP, databases: ["instance/extra.sqlite3"] }, backupSecrets: { sftpKey: KEY } });
    const yml = renderLitestreamConfig(cfg.backup!, "/srv/flaskapp");
    assert.match(yml, /path: "\/srv\/flaskapp\/shared\/db\/app\.sqlite3"/);
    assert.match(yml, /path: "\/var\/backups\/app\/db\/app\.sqlite3"/);
    assert.match(yml, /path: "\/srv\/flaskapp\/shared\/instance\/extra\.sqlite3"/);
    assert.match(yml, /key-path: "\$\{CREDENTIALS_DIRECTORY\}\/sftp-key"/);
    assert.match(yml, /sync-interval: "1s"/);
    assert.ok(!yml.includes("OPENSSH"));
    const s3 = parse({ backup: { replica: "s3://bkt/p", endpoint: "http://10.0.0.5:7070" }, backupSecrets: { accessKeyId: "AKIAXYZ", secretAccessKey: "s3cret" } });
    const y2 = renderLitestreamConfig(s3.backup!, "/srv/flaskapp");
    assert.match(y2, /bucket: "bkt"/);
    assert.match(y2, /path: "p\/db\/app\.sqlite3"/);
    assert.match(y2, /force-path-style: true/);
    assert.ok(!y2.includes("AKIAXYZ") && !y2.includes("s3cret"));
  });
});
