// Staged uploads: what the official command plugin gets as CopyToRemote sources.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { hashFiles, stageFolder } from "../../components/upload";
import { tempDir } from "../tmpdir";

describe("staged uploads", () => {
  let src: string;
  let root: string;
  beforeEach(() => {
    src = tempDir("fdeploy-src-");
    root = tempDir("fdeploy-staging-");
    fs.mkdirSync(path.join(src, "pkg", "__pycache__"), { recursive: true });
    fs.writeFileSync(path.join(src, "wsgi.py"), "app = 1\n");
    fs.writeFileSync(path.join(src, "pkg", "mod.py"), "x = 2\n");
    fs.writeFileSync(path.join(src, "pkg", "__pycache__", "mod.pyc"), "junk");
    fs.writeFileSync(path.join(src, ".env"), "SECRET=never-uploaded\n");
  });
  afterEach(() => {
    fs.rmSync(src, { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("stages exactly the shipped files in a folder named by their hash, per stack", () => {
    const s = stageFolder(src, "release", "dev", root);
    assert.strictEqual(s.source, path.join(root, "dev", `release-${s.hash}`) + "/");
    assert.deepStrictEqual(s.files, ["pkg/mod.py", "wsgi.py"]);
    assert.strictEqual(hashFiles(s.source), s.hash);
    assert.ok(!fs.existsSync(path.join(s.source, ".env")), "a local .env is never staged");
  });

  it("a content change makes a new folder; the same content reuses it", () => {
    const a = stageFolder(src, "release", "dev", root);
    assert.strictEqual(stageFolder(src, "release", "dev", root).source, a.source);
    fs.writeFileSync(path.join(src, "wsgi.py"), "app = 3\n");
    const b = stageFolder(src, "release", "dev", root);
    assert.notStrictEqual(b.hash, a.hash);
    assert.strictEqual(fs.readFileSync(path.join(b.source, "wsgi.py"), "utf8"), "app = 3\n");
    assert.strictEqual(fs.readFileSync(path.join(a.source, "wsgi.py"), "utf8"), "app = 1\n", "a staged folder never changes");
  });

  it("removes entries (and abandoned temporary copies) unused for an hour, keeps recent ones and other stacks'", () => {
    const old = stageFolder(src, "release", "dev", root);
    const other = stageFolder(src, "release", "prod", root);
    const tmp = path.join(root, "dev", "release-abc.tmp-1-x");
    fs.mkdirSync(tmp);
    const longAgo = new Date(Date.now() - 2 * 3600 * 1000);
    for (const p of [old.source, tmp, other.source]) fs.utimesSync(p, longAgo, longAgo);
    fs.writeFileSync(path.join(src, "wsgi.py"), "app = 4\n");
    const recent = stageFolder(src, "release", "dev", root);
    assert.ok(!fs.existsSync(old.source) && !fs.existsSync(tmp), "stale entries of this stack are removed");
    assert.ok(fs.existsSync(recent.source));
    assert.ok(fs.existsSync(other.source), "another stack's entries are left to that stack");
  });
});
