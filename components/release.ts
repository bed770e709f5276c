// Release: the app's files uploaded as a content-addressed folder and installed into
// releases/<id> with a venv of its own (scripts/release.sh). The id is a hash of the files, so
// unchanged code uploads and installs nothing; changed code shows as a replacement in preview.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { folderUpload, stageFolder } from "./upload";
import { Connection } from "./connection";
import { remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface ReleaseArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  /** Local folder with the app (requirements.txt, the WSGI module, static/). */
  appDir: string;
  after: pulumi.Resource[];
}

export class Release extends pulumi.ComponentResource {
  public readonly releaseId: string;
  public readonly installed: command.remote.Command;

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:Release", name, {}, opts);
    const files = stageFolder(args.appDir, "release");
    this.releaseId = files.hash;
    const upload = folderUpload(`${name}-upload`, {
      connection: args.connection, staged: files, remotePath: `.fdeploy/${args.appName}/uploads/${files.hash}`,
    }, { parent: this, dependsOn: args.after });
    this.installed = remoteStep(`${name}-install`, {
      connection: args.connection,
      bundle: args.bundle,
      script: "release.sh",
      params: scriptParams({ APP: args.appName, RELEASE_ID: files.hash }),
      triggers: [files.hash],
      after: [upload],
    }, this);
    this.registerOutputs({ releaseId: this.releaseId });
  }
}
