const pulumi = require("@pulumi/pulumi");
const command = require("@pulumi/command");
const fs = require("fs");

const cfg = new pulumi.Config();
const round = cfg.require("round");          // changes per run
const trig = cfg.require("trigger");         // changes force replacement
const port = parseInt(process.env.FDEPLOY_SSH_PORT, 10);
const remoteDir = cfg.require("remoteDir");

const connection = {
    host: "127.0.0.1",
    port: port,
    user: "root",
    privateKey: cfg.requireSecret("privateKey"),
    hostKey: fs.readFileSync(process.env.FDEPLOY_SSH_HOST_PUB, "utf8").trim(),
};

const local = new command.local.Command("local", {
    create: `echo "local create $ROUND"; cat`,
    update: `echo "local update $ROUND prev=[$PULUMI_COMMAND_STDOUT]"`,
    delete: `echo "local delete" >> ${remoteDir}/local-delete.log`,
    environment: { ROUND: round },
    stdin: pulumi.secret("local-stdin-secret"),
});

const copy = new command.remote.CopyToRemote("copy", {
    connection,
    source: new pulumi.asset.FileArchive("./payload"),
    remotePath: `${remoteDir}/app`,
});

const cfgFile = new command.remote.CopyToRemote("cfgfile", {
    connection,
    source: new pulumi.asset.StringAsset(`round=${round}\n`),
    remotePath: `${remoteDir}/etc/app.conf`,
});

const remote = new command.remote.Command("remote", {
    connection,
    create: `echo "remote create $TOKEN"; cat ${remoteDir}/app/hello.txt; cat ${remoteDir}/etc/app.conf`,
    delete: `echo "remote delete prev=[$PULUMI_COMMAND_STDOUT]" >> ${remoteDir}/remote-delete.log`,
    environment: { TOKEN: pulumi.secret("tok-" + trig) },
    triggers: [trig],
    logging: "stdoutAndStderr",
}, { dependsOn: [copy, cfgFile] });

const run = command.local.runOutput({ command: "echo invoked" });


module.exports = {
    localStdout: local.stdout,
    remoteStdout: remote.stdout,
    remoteStderr: remote.stderr,
    runStdout: run.stdout,
    copyPath: copy.remotePath,
};
