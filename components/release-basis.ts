// The base a delta upload builds on, chosen without asking the server (no SSH step before the upload):
// the release the stack's previous up deployed to the same server, whose manifest the stack's state
// holds (this dynamic resource's old outputs). Its update names that release and the new release's
// files it lacks (by content); the server assembles from it (fdeploy_agent/delta.py: any kept release
// that verifies, or an earlier upload, may supply a file; each is checked by its sha256 and the whole
// release against its id). A first deploy, a new server (host, port, user or host key) or an unchanged
// release: no base, the whole folder.
import * as pulumi from "@pulumi/pulumi";
import { Manifest } from "./delta";

export interface ReleaseBasisArgs {
  releaseId: string;
  manifest: Manifest;
  /** The server, as the upload's triggers name it (user@host:port and its pinned host key). */
  target: pulumi.Input<string>;
}

/** The base for NEWS given the previous outputs OLDS (undefined: none). */
export function basisOf(olds: any, news: { releaseId: string; manifest: Manifest; target: string }): { base: string; need: string[] } {
  const all = Object.keys(news.manifest).sort();
  if (!olds || olds.target !== news.target || !olds.releaseId || olds.releaseId === news.releaseId ||
      !olds.manifest || typeof olds.manifest !== "object") {
    return { base: "", need: all };
  }
  const have = new Set(Object.values(olds.manifest as Manifest));
  const need = all.filter((f) => !have.has(news.manifest[f]));
  return need.length === all.length ? { base: "", need } : { base: olds.releaseId, need };
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: any) {
    return { id: inputs.releaseId, outs: { ...inputs, ...basisOf(undefined, inputs) } };
  },
  async diff(_id: string, olds: any, news: any) {
    return { changes: olds.releaseId !== news.releaseId || olds.target !== news.target };
  },
  async update(_id: string, olds: any, news: any) {
    return { outs: { ...news, ...basisOf(olds, news) } };
  },
};

export class ReleaseBasis extends pulumi.dynamic.Resource {
  /** The kept release the upload builds on ("": none, the whole folder is sent). */
  declare public readonly base: pulumi.Output<string>;
  /** The files the upload carries (by path). */
  declare public readonly need: pulumi.Output<string[]>;

  constructor(name: string, args: ReleaseBasisArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, base: undefined, need: undefined }, opts);
  }
}
