// Where the bundled scripts are (the server agent, migrate.py …): components/scripts of the package. This file is
// components/scripts-dir.ts in the sources (ts-node, the repo's program, fdeploy) and dist/components/scripts-dir.js
// in the published package; the scripts ship beside the build, never compiled. No Pulumi import: fdeploy loads it.
import * as path from "path";

const PACKAGE_DIR = path.basename(path.dirname(__dirname)) === "dist" ? path.resolve(__dirname, "../..") : path.resolve(__dirname, "..");
export const SCRIPTS_DIR = path.join(PACKAGE_DIR, "components", "scripts");
