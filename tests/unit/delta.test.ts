// Delta uploads, local side: the stat cache (scanFolder), the staged objects (stageFolder) and the
// folder an upload sends (uploadFolder) for the base the -basis step names (basisOf, components/release-basis.ts).
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { DELTA_FILE, scanFolder, uploadFolder } from "../../components/delta";
import { basisOf } from "../../components/release-basis";
import { hashFiles, listFiles, stageFolder } from "../../components/upload";
import { tempDir } from "../tmpdir";

const sha = (s: string | Buffer) => crypto.createHash("sha256").update(s).digest("hex");
const past = new Date(Date.now() - 60_000);

describe("delta uploads (local side)", () => {
  let src: string;
  let root: string;
  const write = (f: string, text: string | Buffer) => {
    fs.mkdirSync(path.dirname(path.join(src, f)), { recursive: true });
    fs.writeFileSync(path.join(src, f), text);
    fs.utimesSync(path.join(src, f), past, past);   // older than the racy window: cacheable
  };
  beforeEach(() => {
    src = tempDir("fdeploy-delta-src-");
    root = tempDir("fdeploy-delta-staging-");
    write("requirements.txt", "gunicorn\n");
    write("wsgi.py", "app = 1\n");
    write("static/big.bin", crypto.randomBytes(200_000));
    write("static/old.css", "old{}\n");
  });
  afterEach(() => {
    fs.rmSync(src, { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("the stat cache: an unchanged tree is not read at all; its id and manifest stay exact", () => {
    const cache = path.join(root, "stat.json");
    const files = listFiles(src);
    const first = scanFolder(src, files, cache);
    assert.strictEqual(first.read, 4);
    assert.strictEqual(first.hash, hashFiles(src), "the id is hashFiles' hash (existing releases keep theirs)");
    assert.strictEqual(first.manifest["wsgi.py"], sha("app = 1\n"));
    const second = scanFolder(src, files, cache);
    assert.deepStrictEqual(second, { ...first, read: 0 });
  });

  it("the stat cache sees a change that keeps the size and the mtime (ctime, inode), and never caches a file changed just now", () => {
    const cache = path.join(root, "stat.json");
    scanFolder(src, listFiles(src), cache);
    fs.writeFileSync(path.join(src, "wsgi.py"), "app = 2\n");   // same size
    fs.utimesSync(path.join(src, "wsgi.py"), past, past);       // the old mtime back
    const s = scanFolder(src, listFiles(src), cache);
    assert.strictEqual(s.manifest["wsgi.py"], sha("app = 2\n"));
    assert.strictEqual(s.hash, hashFiles(src));
    fs.writeFileSync(path.join(src, "wsgi.py"), "app = 3\n");   // now: racy
    assert.strictEqual(scanFolder(src, listFiles(src), cache).manifest["wsgi.py"], sha("app = 3\n"));
    fs.writeFileSync(path.join(src, "wsgi.py"), "app = 4\n");
    const racy = scanFolder(src, listFiles(src), cache);
    assert.strictEqual(racy.manifest["wsgi.py"], sha("app = 4\n"));
    assert.ok(racy.read > 0);
  });

  it("staging copies only the changed files: staged folders are hard links to objects named by content", () => {
    const a = stageFolder(src, "release", "dev", root);
    const objects = () => fs.readdirSync(path.join(root, "dev", "objects")).length;
    assert.strictEqual(objects(), 4);
    write("wsgi.py", "app = 2\n");
    const b = stageFolder(src, "release", "dev", root);
    assert.strictEqual(objects(), 5, "one new object: the changed file");
    assert.strictEqual(fs.statSync(path.join(a.source, "static/big.bin")).ino, fs.statSync(path.join(b.source, "static/big.bin")).ino);
    assert.strictEqual(hashFiles(b.source), b.hash);
    assert.strictEqual(fs.readFileSync(path.join(a.source, "wsgi.py"), "utf8"), "app = 1\n", "a staged folder never changes");
  });

  it("a delta upload holds only the files the base lacks and the manifest; the same answer gives the same folder", () => {
    const a = stageFolder(src, "release", "dev", root);
    write("wsgi.py", "app = 2\n");                        // changed
    write("static/new.css", "new{}\n");                   // added
    fs.rmSync(path.join(src, "static/old.css"));          // removed
    const b = stageFolder(src, "release", "dev", root);
    const plan = basisOf({ releaseId: a.hash, manifest: a.manifest, target: "root@h:22 k" }, { releaseId: b.hash, manifest: b.manifest, target: "root@h:22 k" });
    assert.deepStrictEqual(plan, { base: a.hash, need: ["static/new.css", "wsgi.py"] });
    const up = uploadFolder(b.source, b.manifest, plan);
    const sent = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? sent(path.join(dir, e.name)).map((f) => `${e.name}/${f}`) : [e.name]).sort();
    assert.deepStrictEqual(sent(up.source), [DELTA_FILE, "static/new.css", "wsgi.py"]);
    assert.strictEqual(up.bytes, "app = 2\n".length + "new{}\n".length + fs.statSync(path.join(up.source, DELTA_FILE)).size);
    assert.ok(up.bytes * 100 < fs.statSync(path.join(src, "static/big.bin")).size, "much smaller than the app");
    const meta = JSON.parse(fs.readFileSync(path.join(up.source, DELTA_FILE), "utf8"));
    assert.deepStrictEqual(meta, { base: a.hash, manifest: b.manifest });
    assert.deepStrictEqual(Object.keys(meta.manifest).sort(), ["requirements.txt", "static/big.bin", "static/new.css", "wsgi.py"]);
    assert.strictEqual(uploadFolder(b.source, b.manifest, plan).source, up.source, "a second up: the same source");
    // no base: the whole staged copy, as before
    assert.strictEqual(uploadFolder(b.source, b.manifest, { base: "", need: Object.keys(b.manifest) }).source, b.source);
    assert.strictEqual(uploadFolder(b.source, b.manifest, {}).source, b.source, "unknown (a preview): whole");
  });

  it("the base: the release deployed before to the same server; none for a first deploy, a new server or nothing in common", () => {
    const m1 = { "a.py": sha("1"), "b.py": sha("2") };
    const m2 = { "a.py": sha("1"), "b.py": sha("3"), "c/moved.py": sha("2") };
    const t = "deploy@h:22 ssh-ed25519 AAAA";
    assert.deepStrictEqual(basisOf({ releaseId: "r1", manifest: m1, target: t }, { releaseId: "r2", manifest: m2, target: t }),
      { base: "r1", need: ["b.py"] }, "by content: a moved file is not sent again");
    const whole = { base: "", need: ["a.py", "b.py", "c/moved.py"] };
    assert.deepStrictEqual(basisOf(undefined, { releaseId: "r2", manifest: m2, target: t }), whole, "first deploy");
    assert.deepStrictEqual(basisOf({ releaseId: "r1", manifest: m1, target: t }, { releaseId: "r2", manifest: m2, target: "deploy@h:22 ssh-ed25519 BBBB" }),
      whole, "a rebuilt server (new host key) has no releases of ours");
    assert.deepStrictEqual(basisOf({ releaseId: "r1", manifest: { "x": sha("9") }, target: t }, { releaseId: "r2", manifest: m2, target: t }), whole);
  });
});
