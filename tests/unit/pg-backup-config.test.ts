// `backup` with database.engine postgres (issue 33): pgBackRest's S3 target; SFTP refused at preview
// (Debian 12's pgBackRest 2.45; SFTP repositories need 2.46), and the SQLite-only keys refused.
import * as assert from "assert";
import { parseConfig, pgBackupApplies } from "../../components/config";
import { HOST_KEY, PROJECT_DIR, rawConfig, refusal } from "./helpers";

const PW = "correct-horse-battery-staple";
const SECRET = ["secrets", "database", "databasePassword", "backupSecrets"];
const PG = { database: { engine: "postgres", host: { host: "10.0.0.5", hostKey: HOST_KEY } }, databasePassword: PW };
const S3 = { replica: "s3://backups/shop", endpoint: "https://10.0.0.9:7070", region: "us-east-1" };
const KEYS = { accessKeyId: "AKIA", secretAccessKey: "s3cret-s3cret" };
const parse = (over: Record<string, unknown>) => parseConfig(rawConfig(over, SECRET), PROJECT_DIR);
const errorOf = (over: Record<string, unknown>) => refusal(() => parse(over));

describe("backup config with PostgreSQL (pgBackRest)", () => {
  it("takes an s3 target with its keys, retention and verifyEvery, as for SQLite", () => {
    const cfg = parse({ ...PG, backup: { ...S3, retention: "168h", verifyEvery: "24h" }, backupSecrets: KEYS });
    assert.ok(pgBackupApplies(cfg));
    assert.strictEqual(cfg.backup!.retention, "168h");
  });

  it("refuses an sftp target at preview, naming the key, the version and the expected form", () => {
    const e = errorOf({ ...PG, backup: { replica: "sftp://backups@10.0.0.9/srv/b", hostKey: HOST_KEY },
      backupSecrets: { sftpKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n" } });
    assert.match(e, /flask-deploy:backup\.replica: sftp:\/\/ is not supported with database\.engine postgres; expected s3:\/\/bucket\[\/path\]\nDebian 12's pgBackRest is 2\.45 and SFTP repositories need pgBackRest 2\.46 or later/);
  });

  it("refuses a plain http endpoint: pgBackRest speaks HTTPS only", () => {
    assert.match(errorOf({ ...PG, backup: { ...S3, endpoint: "http://10.0.0.9:7070" }, backupSecrets: KEYS }),
      /flask-deploy:backup\.endpoint: pgBackRest reaches S3 over HTTPS only; expected https:\/\/host\[:port\]/);
  });

  it("refuses the SQLite-only keys: backup.databases, beforeChange replica", () => {
    assert.match(errorOf({ ...PG, backup: { ...S3, databases: ["x.sqlite3"] }, backupSecrets: KEYS }), /flask-deploy:backup\.databases: remove it; with database\.engine postgres pgBackRest/);
    assert.match(errorOf({ ...PG, backup: { ...S3, beforeChange: "replica" }, backupSecrets: KEYS }), /flask-deploy:backup\.beforeChange: replica is for SQLite/);
  });

  it("leaves SQLite stacks and database.url stacks on Litestream, as before", () => {
    assert.ok(!pgBackupApplies(parse({ backup: S3, backupSecrets: KEYS })));
    const sftp = { replica: "sftp://backups@10.0.0.9/srv/b", hostKey: HOST_KEY };
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    assert.ok(!pgBackupApplies(parse({ database: { url: "postgresql://u:p@db.example.com/shop" }, backup: sftp, backupSecrets: { sftpKey: key } })));
  });
});
