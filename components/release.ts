// Release: the app's files uploaded as a content-addressed folder and installed into
// releases/<id> with a venv of its own (the agent's release-install, fdeploy_agent/install.py). The id is a hash of the files, so
// unchanged code uploads and installs nothing; changed code shows as a replacement in preview.
// A rollback pins the release to one the server still keeps (stack config `release`): then nothing
// is uploaded, the agent only checks that it is there, and preview says which release appDir has.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { folderUpload, stageFolder, StagedFolder, uploadTarget } from "./upload";
import { Connection } from "./connection";
import { describeShipping } from "./ship-rules";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";
import { manifestHash, uploadFolder } from "./delta";
import { ReleaseBasis } from "./release-basis";
import { PeerHost, releasePeer } from "./release-peer";

export interface ReleaseArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  /** Local folder with the app (requirements.txt, the WSGI module, static/). */
  appDir: string;
  /** A kept release to run instead of appDir's (a rollback). */
  pinned?: string;
  /** A fleet's host after the first, under a pin: this host and the first, from which a pinned release it never
   * ran is copied (release-peer.ts). */
  peer?: { from: PeerHost; to: PeerHost };
  /** runtime docker: the release folder holds the code only (the image holds the venv). */
  docker?: boolean;
  /** The app's staging folder (stagingKey); default: the stack's. */
  staging?: string;
  after: pulumi.Resource[];
}

export class Release extends pulumi.ComponentResource {
  /** The release the stack deploys: appDir's, or the pinned one. */
  public readonly releaseId: string;
  /** The release appDir holds (the one a roll-forward deploys). */
  public readonly appDirRelease: string;
  public readonly installed: command.remote.Command;
  /** appDir's files as staged for the upload (runtime docker: the image's build context). */
  public readonly staged: StagedFolder;
  /** The folder the upload sends (the staged copy, or only the files the server lacks) and its bytes; unset when pinned. */
  public readonly uploadSource?: pulumi.Output<string>;
  public readonly uploadBytes?: pulumi.Output<number>;

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Release", name, {}, opts);
    const files = stageFolder(args.appDir, "release", args.staging);
    this.staged = files;
    if (!args.pinned) pulumi.log.info(describeShipping("appDir", files), this);
    this.appDirRelease = files.hash;
    this.releaseId = args.pinned ?? files.hash;
    let after = args.after;
    if (!args.pinned) {
      // the base the upload builds on: the release this stack last deployed to this server, from the stack's
      // state (components/release-basis.ts, a local step: no SSH before the upload); the upload then carries
      // only the files that release lacks (components/delta.ts)
      const basis = new ReleaseBasis(`${name}-basis`, {
        releaseId: files.hash, manifest: files.manifest, target: uploadTarget(args.connection),
      }, { parent: this, dependsOn: args.after });
      // a preview of a new release cannot know the base yet, but the plugin refuses an unknown source:
      // the whole staged folder stands in there (apply's second argument runs it with the unknown).
      // That argument (runWithUnknowns) is not in @pulumi/pulumi's typed API, and no public one does
      // the same: apply() skips its function while the base is unknown, pulumi.all() and
      // pulumi.output() keep the unknown, isUnknown()/containsUnknowns() need the value apply never
      // hands over, and isDryRun() alone cannot tell an unchanged release (its base known from the
      // state: the upload's source must be the same delta folder, else the preview shows an update
      // the up does not make) from a new one. tests/unit/release-preview.test.ts and the
      // delta-upload e2e suite pin this behaviour, so an SDK that drops the argument fails them.
      const plan = pulumi.all([basis.base, basis.need]);
      const runWithUnknowns = (plan as any).apply.bind(plan) as
        (f: (p: unknown) => ReturnType<typeof uploadFolder>, unknowns: boolean) => pulumi.Output<ReturnType<typeof uploadFolder>>;
      const upload = runWithUnknowns((p) => {
        const known = Array.isArray(p) && typeof p[0] === "string" && Array.isArray(p[1]);
        const base = known ? { base: p[0] as string, need: p[1] as string[] } : {};
        const u = uploadFolder(files.source, files.manifest, base);
        if (known) {
          pulumi.log.info(`release ${files.hash}: its upload holds ${u.files} of ${files.files.length} files, ${u.bytes} bytes` +
            (base.base ? ` (the rest from kept release ${base.base})` : " (no release deployed before to build on)"), this);
        }
        return u;
      }, true);
      this.uploadSource = upload.source;
      this.uploadBytes = upload.bytes;
      after = [folderUpload(`${name}-upload`, {
        connection: args.connection, staged: files, source: upload.source, remotePath: `.fdeploy/${args.appName}/uploads/${files.hash}`,
      }, { parent: this, dependsOn: [basis, ...args.after] })];
    }
    if (args.pinned && args.peer) {
      after = [releasePeer(`${name}-peer`, { appName: args.appName, releaseId: args.pinned, ...args.peer, docker: args.docker, after: args.after }, this)];
    }
    if (args.pinned && args.pinned !== files.hash) {
      pulumi.log.warn(`release pinned to ${args.pinned} by the stack's \`release\` setting (a rollback); appDir holds release ` +
        `${files.hash}, which \`npm run rollback -- --stack ${pulumi.getStack()} --forward\` (or \`pulumi config rm release\` and up) deploys`, this);
    }
    this.installed = remoteStep(`${name}-install`, {
      connection: args.connection,
      bundle: args.bundle,
      script: AGENT,
      verb: "release-install",
      limit: "build",   // the venv (pip)
      params: scriptParams({
        APP: args.appName, RELEASE_ID: this.releaseId, ...(args.pinned ? { PINNED: 1 } : {}), ...(args.docker ? { RUNTIME: "docker" } : {}),
      }),
      triggers: [this.releaseId],
      after,
    }, this);
    this.registerOutputs({ releaseId: this.releaseId, appDirRelease: this.appDirRelease, manifestHash: manifestHash(files.manifest), uploadBytes: this.uploadBytes });
  }
}
