// One remote.Command on a test server: create writes a marker file, an input change updates it,
// delete removes it. Proves the engine, the language host, the command plugin and SSH work.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

const cfg = new pulumi.Config();
const marker = new command.remote.Command("marker", {
  connection: {
    host: cfg.require("host"),
    user: "root",
    privateKey: pulumi.secret(fs.readFileSync(cfg.require("keyPath"), "utf8")),
    hostKey: cfg.require("hostKey"),
  },
  create: "cat > /root/smoke-marker && systemctl is-system-running",
  update: "cat > /root/smoke-marker && echo updated",
  delete: "rm -f /root/smoke-marker && touch /root/smoke-deleted",
  stdin: cfg.require("message"),
});
export const stdout = marker.stdout;
