// ReleasePeer: on a fleet, a rollback pins a release that a host which joined later never ran (README "Scale out").
// A local step of the stack (the agent's release-copy on the deploying machine, as the fleet switch) asks the host
// whether it keeps the release and, only when it does not, copies its files from the first host (which keeps it:
// fdeploy rollback's plan found it there) into the host's uploads, checked by hash; the host's release-install then
// installs it as any upload. Hosts that keep it: one question each, nothing copied.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { SshTarget } from "./pinned-ssh";
import { AGENT, ScriptBundle, SCRIPTS_DIR } from "./remote-script";

/** A host of the fleet as the copy reaches it: its SSH target and this deploy's scripts there. */
export interface PeerHost {
  target: SshTarget;
  bundle: ScriptBundle;
}

/** DOCKER (runtime docker): a host that lacks the release is refused (its image is not copied), before any host switches. */
export function releasePeer(name: string, args: { appName: string; releaseId: string; from: PeerHost; to: PeerHost; docker?: boolean; after: pulumi.Resource[] },
  parent: pulumi.Resource): command.local.Command {
  const line = (h: PeerHost, verb: string) => h.bundle.stepLine(name, "default", 0, AGENT, verb);
  return new command.local.Command(name, {
    create: `python3 -I -B ${AGENT} release-copy`,
    dir: SCRIPTS_DIR,
    stdin: JSON.stringify({
      APP: args.appName, RELEASE_ID: args.releaseId, ...(args.docker ? { RUNTIME: "docker" } : {}),
      FROM: { address: args.from.target.host, ssh: args.from.target, export: line(args.from, "release-export") },
      TO: { address: args.to.target.host, ssh: args.to.target, import: line(args.to, "release-import") },
    }),
    addPreviousOutputInEnv: false,
  }, { parent, dependsOn: [...args.after, args.from.bundle.upload, args.to.bundle.upload] });
}
