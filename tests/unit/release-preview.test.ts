// The release upload in a preview (components/release.ts), under Pulumi mocks in preview mode: a new
// release's -basis step (components/release-basis.ts) has not run, so its answer is unknown, yet the upload's source must be a
// known folder (the command plugin refuses an unknown one): the whole staged folder stands in. An
// unchanged release's base answer is known (the state's), so the preview computes the same delta
// folder the up would send. Fails if the apply stops running with the unknown (Output.apply(fn, true)).
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { unknownValue } from "@pulumi/pulumi/runtime/rpc";
import { parseConfig } from "../../components/config";
import { FlaskApp } from "../../components";
import { PROJECT_DIR, rawConfig } from "./helpers";

describe("release upload in a preview (mocks, preview mode)", function () {
  this.timeout(60000);
  const uploads = new Map<string, any>();

  before(async () => {
    const raw = rawConfig({ migrationsDir: "migrations" });
    pulumi.runtime.setAllConfig(raw.values, raw.secretKeys);
    await pulumi.runtime.setMocks({
      newResource: (args) => {
        if (args.name.endsWith("-upload") && args.name.includes("release")) uploads.set(args.name, args.inputs.source);
        // fresh: a new release (its -basis step's answer comes in the up: unknown); kept: the state's answer
        const basis = args.name === "fresh-release-basis" ? { base: unknownValue, need: unknownValue }
          : args.name === "kept-release-basis" ? { base: "0123456789ab", need: ["wsgi.py"] } : {};
        return { id: `${args.name}-id`, state: { running: true, ...args.inputs, ...basis, stdout: "ok\n", stderr: "" } };
      },
      call: (args) => args.inputs,
    }, "flask-deploy", "unit-release-preview", true);
    const cfg = (appName: string, serverName: string) => parseConfig(rawConfig({ appName, serverName, migrationsDir: "migrations" }), PROJECT_DIR);
    const apps = [new FlaskApp("fresh", { ...cfg("fresh", "fresh.example.com"), projectDir: PROJECT_DIR }),
      new FlaskApp("kept", { ...cfg("kept", "kept.example.com"), projectDir: PROJECT_DIR })];
    await Promise.all(apps.map((a) => new Promise((r) => a.releaseId.apply(r))));
    await new Promise((r) => setTimeout(r, 1000));   // every registration settled
  });

  /** The folder of the upload's archive (a FileArchive whose path is known). */
  const folder = async (name: string): Promise<string> => {
    const source = uploads.get(name);
    assert.ok(source instanceof pulumi.asset.FileArchive, `${name}: a known archive (${JSON.stringify(source)})`);
    const p = await source.path;
    assert.strictEqual(typeof p, "string", `${name}: a known path`);
    return p;
  };

  it("a new release: the whole staged folder, known, stands in for the unknown answer", async () => {
    const p = await folder("fresh-release-upload");
    assert.doesNotMatch(p, /delta-/);
    assert.match(p, /\/release[^/]*\/?$|objects|staged/, p);
  });

  it("an unchanged release: the delta folder of the state's answer, as the up computes it", async () => {
    assert.match(await folder("kept-release-upload"), /\/delta-[0-9a-f]{16}\/$/);
  });
});
