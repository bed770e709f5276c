// A previous main, as its users ran it, for the upgrade e2e: its tree (git archive of the commit,
// so this checkout is left as it is) and its command plugin: the official one, or for the older
// main the stand-in it shipped and was tested on, built once from that commit into the cache. Nothing here is used to deploy anything but that
// old state; this tree itself runs only on the official plugin.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "./pulumi";
import { tempDir } from "../tmpdir";

/** A main users deployed with: its commit, and whether it ran on its own command-plugin stand-in. */
export interface PreviousMain {
  commit: string;
  standIn: boolean;
  /** Already on the agent's layout (issue 24: state.json, history.jsonl): nothing to convert. */
  agentLayout?: boolean;
}

/** The mains an upgrade e2e starts from: the last one on the stand-in plugin (AssetArchive
 * uploads, the environment in shared/.env), the first on the official parts (before the
 * least-privilege users, shared venvs and maintenance mode), the newest that landed before this
 * tree (6b0a128: its delta upload's release-base step before the upload), and the last to open the
 * deploy lock as a file (1cda714, last: it is refused on a server this tree converted). */
export const PREVIOUS_MAINS: PreviousMain[] = [
  { commit: "6ffbd1e4207ac27080004bd0facdc0856893c7b9", standIn: true },
  { commit: "e175d17", standIn: false },
  { commit: "6b0a128", standIn: false, agentLayout: true },
  { commit: "1cda714", standIn: false },
];
const COMMAND_VERSION = "1.2.1";

export interface PreviousMainTree {
  dir: string;
  /** A PULUMI_HOME whose command plugin 1.2.1 is the one that main was run with. */
  pulumiHome: string;
  cleanup(): void;
}

export function previousMainTree(from: PreviousMain): PreviousMainTree {
  const PREVIOUS_MAIN = from.commit;
  const dir = tempDir("fdeploy-previous-main-");
  const pulumiHome = tempDir("fdeploy-previous-home-");
  try {
    execFileSync("bash", ["-c", 'git -C "$1" archive "$2" | tar -x -C "$3"', "_", PROJECT_DIR, PREVIOUS_MAIN, dir], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e: any) {
    throw new Error(`the upgrade e2e needs commit ${PREVIOUS_MAIN} (the previous main) in this clone's history: ${e.stderr ?? e}`);
  }
  // the same dependency versions as this tree
  fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(dir, "node_modules"));
  if (from.standIn) {
    const plugin = buildStandIn(dir, PREVIOUS_MAIN);
    execFileSync("pulumi", ["plugin", "install", "resource", "command", COMMAND_VERSION, "--file", plugin],
      { env: { ...process.env, PULUMI_HOME: pulumiHome }, stdio: ["ignore", "ignore", "pipe"] });
  } else {
    fs.rmSync(pulumiHome, { recursive: true, force: true });
  }
  return {
    dir, pulumiHome: from.standIn ? pulumiHome : process.env.PULUMI_HOME!,   // else the official plugin
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(pulumiHome, { recursive: true, force: true });
    },
  };
}

/** Build (once per commit, into the cache) the stand-in plugin from the previous main's sources. */
function buildStandIn(tree: string, PREVIOUS_MAIN: string): string {
  const out = path.join(process.env.FDEPLOY_CACHE ?? "/var/cache/fdeploy", "previous-main", PREVIOUS_MAIN.slice(0, 12), "pulumi-resource-command");
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync("go", ["build", "-trimpath", "-ldflags", `-s -w -X main.version=${COMMAND_VERSION}`, "-o", `${out}.tmp`, "./command-provider"],
    { cwd: path.join(tree, "scripts", "toolchain"), env: { ...process.env, CGO_ENABLED: "0" }, stdio: ["ignore", "inherit", "inherit"] });
  fs.renameSync(`${out}.tmp`, out);
  return out;
}
