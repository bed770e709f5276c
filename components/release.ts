// Release: the app's files uploaded as a content-addressed folder and installed into
// releases/<id> with a venv of its own (the agent's release-install, fdeploy_agent/install.py). The id is a hash of the files, so
// unchanged code uploads and installs nothing; changed code shows as a replacement in preview.
// A rollback pins the release to one the server still keeps (stack config `release`): then nothing
// is uploaded, the agent only checks that it is there, and preview says which release appDir has.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { folderUpload, stageFolder, StagedFolder } from "./upload";
import { Connection } from "./connection";
import { describeShipping } from "./ship-rules";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface ReleaseArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  /** Local folder with the app (requirements.txt, the WSGI module, static/). */
  appDir: string;
  /** A kept release to run instead of appDir's (a rollback). */
  pinned?: string;
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

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Release", name, {}, opts);
    const files = stageFolder(args.appDir, "release", args.staging);
    this.staged = files;
    if (!args.pinned) pulumi.log.info(describeShipping("appDir", files), this);
    this.appDirRelease = files.hash;
    this.releaseId = args.pinned ?? files.hash;
    const after = args.pinned ? args.after : [folderUpload(`${name}-upload`, {
      connection: args.connection, staged: files, remotePath: `.fdeploy/${args.appName}/uploads/${files.hash}`,
    }, { parent: this, dependsOn: args.after })];
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
    this.registerOutputs({ releaseId: this.releaseId, appDirRelease: this.appDirRelease });
  }
}
