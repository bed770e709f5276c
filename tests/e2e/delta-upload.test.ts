// Issue 29, delta uploads: a new release sends only the files the release the stack deployed before lacks
// (issue 27: chosen from the stack's state, no SSH step before the upload) and is assembled there (hard
// links to kept releases' files that verify, or earlier uploads' files checked by hash), checked against
// its id; a kept release that no longer verifies is never used, and with no source left the up fails
// before anything changes, naming the replace that sends everything. The app carries a
// 50 MB incompressible static folder: each case reports the bytes sent and the up's seconds.
// Server dl (octet 195). Time: 1 min 49 s warm on a quiet machine (before issue 27's last case); 4 min 10 s at load 15 with 6 ups, a failed up and a preview (the server boot included).
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { startServer, TestServer } from "../servers";
import { shippingList } from "../../components/ship-rules";
import { copyApp, get } from "./app-copy";
import { changed, TestStack } from "./pulumi";

const MB = 1 << 20;

describe("delta uploads: only what changed is sent, the server assembles and verifies", function () {
  this.timeout(900000);
  let server: TestServer;
  let stack: TestStack;
  let app: ReturnType<typeof copyApp>;
  let base: string;
  const figures: string[] = [];

  /** An up that must succeed: its output, seconds, and the upload's line (files and bytes sent, base). */
  const up = (what: string) => {
    const t = Date.now();
    const r = stack.up();
    const seconds = (Date.now() - t) / 1000;
    assert.strictEqual(r.status, 0, r.output);
    const m = /release ([0-9a-f]{12}): its upload holds (\d+) of (\d+) files, (\d+) bytes(?: \(the rest from kept release ([0-9a-f]{12})\))?/.exec(r.output);
    const sent = m && changed(r.output).includes("release-upload") ? { files: Number(m[2]), of: Number(m[3]), bytes: Number(m[4]), base: m[5] ?? "" } : undefined;
    if (sent) figures.push(`| ${what} | ${sent.files} of ${sent.of} | ${sent.bytes} | ${seconds.toFixed(1)} s |`);
    return { r, seconds, sent };
  };
  const live = () => stack.outputs().releaseId as string;
  const rel = (id: string) => `/srv/flaskapp/releases/${id}`;
  /** The server's release as path → sha256 (what install adds left out), and the local tree's. */
  const serverTree = (id: string) => Object.fromEntries(server.ssh(
    `cd ${rel(id)} && find . -type f ! -path ./.fdeploy-release.json -printf '%P\\0' | sort -z | xargs -0 sha256sum`,
  ).trim().split("\n").map((l) => [l.slice(66), l.slice(0, 64)]));
  const localTree = () => Object.fromEntries(shippingList(app.dir).files.map((f) =>
    [f, crypto.createHash("sha256").update(fs.readFileSync(path.join(app.dir, f))).digest("hex")]));
  const inode = (id: string, f: string) => server.ssh(`stat -c %i ${rel(id)}/${f}`).trim();

  before(() => {
    server = startServer("dl", 195);
    base = `http://${server.host}`;
    app = copyApp("dl");
    fs.mkdirSync(path.join(app.dir, "static", "big"));
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(app.dir, "static", "big", `blob${i}.bin`), crypto.randomBytes(10 * MB));
    fs.writeFileSync(path.join(app.dir, "static", "old.txt"), "to be removed\n");
    stack = new TestStack("dl");
    stack.target(server, { appDir: app.rel, migrationsDir: "migrations", healthTimeoutSeconds: "15" });
    stack.setConfig("secrets.SECRET_KEY", "dl-test-secret", { secret: true });
  });
  after(() => {
    console.log(["\n| delta-upload: one up | files sent | bytes sent | the up |", "|---|---|---|---|", ...figures].join("\n"));
    stack?.remove();
  });

  it("the first up uploads everything (no kept release to build on)", async () => {
    const { sent } = up("first deploy (50 MB static)");
    assert.ok(sent && sent.base === "" && sent.files === sent.of && sent.bytes > 50 * MB, JSON.stringify(sent));
    assert.strictEqual((await get(`${base}/static/old.txt`)).status, 200);
  });

  it("a changed, an added and a removed file: only those are sent; the release is exactly the new tree, unchanged files linked", async () => {
    const first = live();
    app.edit("notes/templates/index.html", (s) => s.replace("</body>", "<p>delta two</p></body>"));
    fs.writeFileSync(path.join(app.dir, "static", "new.css"), "p{color:red}\n");
    fs.rmSync(path.join(app.dir, "static", "old.txt"));
    // the preview cannot know the base yet (a local step of the up): the whole folder stands in for the upload's source
    const p = stack.preview();
    assert.strictEqual(p.status, 0, p.output);
    assert.match(p.output, /~\s+pulumi-nodejs:dynamic:Resource\s+app-release-basis\s+update/);
    assert.doesNotMatch(p.output, /release-base/, "no SSH step before the upload");
    const { r, sent } = up("one-line change + 1 added + 1 removed: delta");
    assert.ok(sent, r.output);
    assert.strictEqual(sent!.base, first);
    assert.strictEqual(sent!.files, 2, "the changed and the added file");
    assert.ok(sent!.bytes < 10000 && sent!.bytes * 1000 < 50 * MB, `${sent!.bytes} bytes sent`);
    // what the plugin uploaded: the staged delta folder (the manifest and the two files)
    const second = live();
    assert.notStrictEqual(second, first);
    assert.deepStrictEqual(serverTree(second), localTree(), "the deployed release is exactly the new tree");
    assert.strictEqual(inode(second, "static/big/blob0.bin"), inode(first, "static/big/blob0.bin"), "an unchanged file is a hard link to the base's");
    assert.match(r.output, new RegExp(`release ${second} assembled from kept release ${first}: 2 files uploaded, \\d+ linked`));
    assert.match((await get(`${base}/`)).text, /delta two/);
    assert.strictEqual((await get(`${base}/static/new.css`)).text, "p{color:red}\n");
    assert.strictEqual((await get(`${base}/static/old.txt`)).status, 404, "the removed file is gone");
  });

  it("a second up with the same inputs changes nothing", () => {
    const { r } = up("no change");
    assert.deepStrictEqual(changed(r.output), []);
  });

  it("a kept release whose files no longer match its id is never used: the files come from a verified source, none of the corrupted bytes", async () => {
    const [second] = [live()];
    // blob0 is one file (hard-linked) in both kept releases: both no longer verify; the first (whole) upload still holds it
    server.ssh(`printf corrupt | dd of=${rel(second)}/static/big/blob0.bin bs=1 seek=1000 conv=notrunc status=none`);
    app.edit("notes/templates/index.html", (s) => s.replace("delta two", "delta three"));
    const { r, sent } = up("one-line change, kept releases corrupted: delta, blobs from the first upload");
    assert.ok(sent && sent.base === second && sent.files === 1, JSON.stringify(sent));
    assert.match(r.output, new RegExp(`kept release ${second} no longer matches its content hash`));
    assert.match(r.output, /\d+ from earlier uploads/);
    const third = live();
    assert.deepStrictEqual(serverTree(third), localTree(), "the release is exactly the tree, none of the corrupted bytes");
    assert.notStrictEqual(inode(third, "static/big/blob0.bin"), inode(second, "static/big/blob0.bin"));
    assert.match((await get(`${base}/`)).text, /delta three/);
  });

  it("no source left for a file (releases and uploads deleted): the up fails before the switch, naming the replace that sends everything", async () => {
    const before = live();
    server.ssh(`rm -rf /srv/flaskapp/releases/*/static/big ~/.fdeploy/flaskapp/uploads/*`);
    app.edit("notes/templates/index.html", (s) => s.replace("</body>", "<p>delta four</p></body>"));
    const failed = stack.up();
    assert.notStrictEqual(failed.status, 0, failed.output);
    assert.match(failed.output, /release [0-9a-f]{12}: \S+ is neither in its delta upload nor in a kept release that verifies/);
    assert.match(failed.output, /pulumi up --replace URN` of the -basis step/);
    assert.doesNotMatch(failed.output, /activation-switch\s+(updated|updating)/, "nothing switched");
    assert.strictEqual(server.ssh("readlink /srv/flaskapp/current").trim(), rel(before), "the live release is unchanged");
    // the way out the error names
    const urn = JSON.parse(stack.mustRun(["stack", "export"]).stdout).deployment.resources
      .map((x: any) => x.urn).find((u: string) => u.endsWith("::app-release-basis"));
    assert.ok(urn, "the -basis step's URN");
    const t = Date.now();
    const r = stack.run(["up", "--yes", "--skip-preview", "--replace", urn]);
    assert.strictEqual(r.status, 0, r.output);
    assert.match(r.output, /its upload holds (\d+) of \1 files, \d+ bytes \(no release deployed before to build on\)/);
    figures.push(`| one-line change, no source left: up --replace the -basis step: whole | all | > 50 MB | ${((Date.now() - t) / 1000).toFixed(1)} s |`);
    assert.deepStrictEqual(serverTree(live()), localTree());
    assert.match((await get(`${base}/`)).text, /delta four/);
  });
});
