// The deployment story of one stack (dev, prod, …): read and validate the stack's config, then
// reconcile its server. Each step is one component in components/; every later `pulumi up` runs
// only the steps whose inputs changed.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { canarySettings, loadStackConfig, tlsSettings } from "./components/config";
import { connectionFor } from "./components/connection";
import { AppIdentity } from "./components/app-identity";
import { ScriptBundle } from "./components/remote-script";
import { BaseSystem } from "./components/base-system";
import { Release } from "./components/release";
import { AppEnvironment, deployPaths, withDeployPaths } from "./components/environment";
import { checkMigrationsCached, MigrationRunner } from "./components/migrations";
import { resolveMigrationsDir } from "./components/migrations-default";
import { appWarnings } from "./components/app-warnings";
import { GunicornService } from "./components/gunicorn";
import { Activation, describeCanary } from "./components/activation";
import { NginxSite } from "./components/nginx";
import { TlsCertificate } from "./components/tls";
import { SiteSettings } from "./components/nginx-site";
import { HealthCheck } from "./components/health-check";
import { ServerState } from "./components/server-state";
import { CertificateState } from "./components/certificate-state";
import { SharedPaths } from "./components/shared-paths";
import { ReleaseCommands } from "./components/release-commands";
import { Preflight } from "./components/preflight";
import { Backup } from "./components/backup";
import { JobScheduleCheck, ScheduledJobs } from "./components/jobs";
import { DockerImage } from "./components/docker-image";
import { program } from "./components/program";

// The program is async (the nodejs host awaits it; its result is the stack outputs) only to let the engine start
// the dynamic-resource provider early (step 2). `program` keeps its errors quick to print (components/program.ts).
export = program(async () => {
  // 1. Config and migration files: validated before any resource exists.
  const cfg = loadStackConfig(__dirname);
  // unset migrationsDir: <appDir>/migrations; a stack deployed under the old default keeps it (with a warning)
  cfg.migrationsDir = await resolveMigrationsDir(cfg);
  // an app that would run unsafely (no SECRET_KEY; debug on in production): warnings naming the fix
  for (const w of appWarnings(cfg, path.resolve(__dirname, cfg.appDir), pulumi.getStack())) pulumi.log.warn(w);
  const migrationsDir = cfg.migrationsDir ? path.resolve(__dirname, cfg.migrationsDir) : undefined;
  const migrationFiles = migrationsDir ? checkMigrationsCached(migrationsDir) : [];
  const app = cfg.appName;
  const appRoot = `/srv/${app}`;
  const connection = connectionFor(cfg.server);
  const common = { connection, appName: app };

  // 2. The app's identity on its server (an in-place rename is refused at preview), the scripts every
  //    step runs, then the base system (packages, user, directories).
  const identity = new AppIdentity("identity", { appName: app, host: cfg.server.host });
  // Every remote step waits for the identity, whose check starts the engine's dynamic-resource provider (a Node.js
  // process, 0.5–2 s): yield until its registration has gone to the engine, so that boot runs while the rest of
  // the program (hashing the app and scripts, the other registrations) does.
  await identity.sent();
  const bundle = new ScriptBundle("scripts", { ...common, sudo: cfg.server.user !== "root", limits: cfg.timeouts, after: [identity] });
  const docker = cfg.runtime === "docker" ? cfg.docker! : undefined;
  if (docker && cfg.server.user !== "root") {
    pulumi.log.warn(`runtime docker: the Docker provider connects as ${cfg.server.user} and cannot use sudo; that user must be in ` +
      "the server's docker group, which is root-equivalent (README \"Docker runtime\")");
  }
  // scheduled jobs (optional, `jobs`): the server checks their schedules before anything changes
  const hasJobs = Object.keys(cfg.jobs).length > 0;
  const jobCheck = hasJobs ? new JobScheduleCheck("job-schedules", { ...common, bundle, jobs: cfg.jobs }) : undefined;
  const base = new BaseSystem("base", {
    ...common, bundle, appRoot, appUser: app, docker: docker !== undefined, after: jobCheck ? [jobCheck.step] : [],
  });

  // 3. The release (code + venv; or a kept one that a rollback pinned), its environment, its shared
  //    paths and the service that runs it.
  const release = new Release("release", {
    ...common, bundle, appDir: path.resolve(__dirname, cfg.appDir), pinned: cfg.release, docker: docker !== undefined, after: [base.ready],
  });
  // runtime docker: the release as an image built on the server's engine (a rollback runs a kept one)
  const image = docker && cfg.release === undefined ? new DockerImage("image", {
    server: cfg.server, appName: app, staged: release.staged, releaseId: release.releaseId, baseImage: docker.baseImage,
    after: [base.ready],
  }) : undefined;
  // env and secrets values may name the deploy's paths: ${APP_ROOT}, ${SHARED}, ${DATABASE_PATH}
  const paths = deployPaths(appRoot);
  const databasePath = paths.DATABASE_PATH;
  const env = withDeployPaths(cfg.env, paths);
  const secrets = withDeployPaths(cfg.secrets, paths);
  const environment = new AppEnvironment("env", {
    ...common, bundle, after: [base.ready],
    plain: { ...env, DATABASE_PATH: databasePath },
    secrets: pulumi.secret(secrets),
  });
  // the release's shared paths (Flask's instance folder when the app uses it) and rendered shared files
  const shared = cfg.sharedDirs.length || cfg.sharedFiles.length ? new SharedPaths("shared", {
    ...common, bundle, releaseId: release.releaseId, dirs: cfg.sharedDirs, files: cfg.sharedFiles,
    values: pulumi.secret({ ...env, DATABASE_PATH: databasePath, ...secrets }), after: [release.installed],
  }) : undefined;
  const dockerEnvNames = [...Object.keys(cfg.env), ...Object.keys(cfg.secrets), "DATABASE_PATH"];
  const service = new GunicornService("gunicorn", {
    ...common, bundle, workers: cfg.workers, appModule: cfg.appModule, timeoutSeconds: cfg.proxyTimeoutSeconds,
    docker: docker ? {
      envNames: dockerEnvNames, sharedDirs: cfg.sharedDirs,
      memory: docker.memory, cpus: docker.cpus,
    } : undefined,
    after: [base.ready, environment], // the unit reads the environment file
  });

  // 3b. Offsite backups (optional, `backup.replica`): on a brand-new server the databases are restored
  //     from the replica before migrations run and the app starts; then Litestream replicates them.
  const backup = cfg.backup === undefined ? undefined : new Backup("backup", {
    ...common, bundle, appRoot, backup: cfg.backup, secrets: pulumi.secret(cfg.backupSecrets ?? {}), after: [base.ready],
  });
  const restored = backup ? [backup.step] : [];

  // 4. The database schema and the switch to the release (health-checked). A deploy proves the release
  //    loads (preflight), migrates, runs the release commands, then switches; a rollback switches first,
  //    then brings the schema down to the pinned release's version. Migrations are expand/contract
  //    (README), so either way the code that runs in between works with the schema it meets.
  const canary = canarySettings(cfg);
  if (canary) pulumi.log.info(describeCanary(canary));
  const migrationArgs = (dir: string) => ({ ...common, bundle, migrationsDir: dir, migrations: migrationFiles, keepBackups: cfg.keepBackups, keepBackupsBytes: cfg.keepBackupsBytes });
  const activationArgs = {
    ...common, bundle, releaseId: release.releaseId, appModule: cfg.appModule, strategy: cfg.strategy, canary, healthPath: cfg.healthPath,
    healthTimeoutSeconds: cfg.healthTimeoutSeconds, keepReleases: cfg.keepReleases, rollback: cfg.release !== undefined,
    serviceRevision: service.revision, envRevision: environment.revision,
    sharedRevision: cfg.sharedFiles.some((f) => f.content !== undefined) ? shared?.revision : undefined,
    docker: docker ? { imageId: image ? image.imageId : `kept:${release.releaseId}` } : undefined,
  };
  const switchAfter = [release.installed, service.unit, environment, ...(shared ? [shared.step] : []), ...restored, ...(image ? [image.image] : [])];
  let migrations: MigrationRunner | undefined, activation: Activation;
  if (cfg.release === undefined) {
    // the release loads with its staged settings before anything touches the database (python runtime)
    const preflight = docker ? undefined : new Preflight("preflight", {
      ...common, bundle, releaseId: release.releaseId, appModule: cfg.appModule, healthPath: cfg.healthPath,
      healthTimeoutSeconds: cfg.healthTimeoutSeconds, envRevision: environment.revision, unitRevision: service.revision,
      after: [release.installed, environment, service.unit, ...(shared ? [shared.step] : []), ...restored],
    });
    const loaded = preflight ? [preflight.step] : [];
    migrations = migrationsDir ? new MigrationRunner("migrations", {
      ...migrationArgs(migrationsDir), after: [release.installed, environment, ...restored, ...loaded],
    }) : undefined;
    // the app's own release commands (e.g. flask db upgrade): after the SQL migrations, before the switch
    const releaseCommands = cfg.releaseCommands.length ? new ReleaseCommands("release-commands", {
      ...common, bundle, releaseId: release.releaseId, commands: cfg.releaseCommands, keepBackups: cfg.keepBackups, keepBackupsBytes: cfg.keepBackupsBytes,
      docker: docker ? { envNames: dockerEnvNames, sharedDirs: cfg.sharedDirs } : undefined,
      after: [...switchAfter, ...loaded, ...(migrations ? [migrations.step] : [])],
    }) : undefined;
    const before = [...loaded, migrations?.step, releaseCommands?.step].filter((r): r is command.remote.Command => r !== undefined);
    activation = new Activation("activation", { ...activationArgs, after: [...switchAfter, ...before] });
  } else {
    activation = new Activation("activation", { ...activationArgs, after: switchAfter });
    migrations = migrationsDir ? new MigrationRunner("migrations", { ...migrationArgs(migrationsDir), downToSchemaOf: cfg.release, after: [activation.step] }) : undefined;
  }
  // the switch, and under a rollback the schema brought down after it: what the jobs and the certificate wait for
  // (the site, the health probe and the server's state need only the switch: under a rollback they run beside it)
  const switched = [activation.step, ...(migrations ? [migrations.step] : [])];
  // 4b. Scheduled jobs: timers whose runs use the live release (`current`), set up after the switch.
  //     Without jobs there is no step; removing the last job deletes it, which removes every timer.
  if (hasJobs) new ScheduledJobs("jobs", { ...common, bundle, jobs: cfg.jobs, after: switched });

  // 5. nginx, and a last check through it. With HTTPS on (tls.mode acme or custom), the certificate
  //    comes first: the site then serves it.
  const siteSettings: SiteSettings = {
    appName: app, appRoot, serverName: cfg.serverName, clientMaxBodySize: cfg.clientMaxBodySize,
    proxyTimeoutSeconds: cfg.proxyTimeoutSeconds, static: cfg.static, ...(canary ? { canary: true } : {}),
  };
  const tlsCfg = tlsSettings(cfg);
  const tls = tlsCfg.mode === "acme"
    ? new TlsCertificate("tls", {
      ...common, bundle, site: siteSettings, acmeServer: tlsCfg.acmeServer, email: tlsCfg.email,
      caBundlePath: tlsCfg.caBundlePath, projectDir: __dirname, hstsMaxAgeSeconds: tlsCfg.hstsMaxAgeSeconds,
      after: switched,
    })
    : tlsCfg.mode === "custom"
      ? new TlsCertificate("tls", {
        ...common, bundle, site: siteSettings, custom: { certificate: tlsCfg.certificate, privateKey: tlsCfg.privateKey },
        projectDir: __dirname, hstsMaxAgeSeconds: tlsCfg.hstsMaxAgeSeconds, after: switched,
      })
      : undefined;
  const nginx = new NginxSite("nginx", {
    ...common, bundle, ...(tls ? tls.site : siteSettings), after: [activation.step, ...(tls ? [tls.step] : [])],
  });
  const health = new HealthCheck("health", {
    ...common, bundle, serverName: cfg.serverName, healthPath: cfg.healthPath, timeoutSeconds: cfg.healthTimeoutSeconds,
    https: tls !== undefined,
    watch: [release.releaseId, nginx.step.stdout, activation.step.stdout, ...(tls ? [tls.step.stdout] : [])],
    after: [nginx.step, activation.step],
  });

  // 6. What the server really runs: read by `pulumi refresh` / `preview --refresh`, repaired by
  //    `up --refresh` (drift: a stopped app, a hand-edited site or environment, another live release).
  //    Read once the switch and the site are done, beside the health probe (not after it: one remote
  //    step less on the deploy's critical path).
  const { host, port, user, hostKey, privateKeyPath } = cfg.server;
  const settled = [nginx.step, activation.step];
  const serverState = new ServerState("server-state", {
    server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) },
    appName: app, scriptsDir: bundle.remoteDir, release: release.releaseId,
  }, { dependsOn: settled });
  // With HTTPS: the certificate on the server (refresh shows a missing or expired one; up --refresh issues it again).
  const certState = tls
    ? new CertificateState("certificate-state", {
      server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) },
      appName: app, scriptsDir: bundle.remoteDir, names: cfg.serverName,
    }, { dependsOn: settled })
    : undefined;

  // Stack outputs
  const urlHost = cfg.serverName === "_" ? cfg.server.host : cfg.serverName.split(" ")[0];
  return {
    url: `${tls ? "https" : "http"}://${urlHost}/`,
    releaseId: release.releaseId,
    /** The release appDir holds; differs from releaseId while a rollback pins an older one. */
    appDirRelease: release.appDirRelease,
    server: `${cfg.server.user}@${cfg.server.host}:${cfg.server.port}`,
    appPath: appRoot,
    schemaVersion: migrations ? migrations.schemaVersion : 0,
    /** The SQL migrations folder this up ran with ('none': none); an unset migrationsDir reads it (migrations-default.ts). */
    migrationsDir: cfg.migrationsDir ?? "none",
    strategy: cfg.strategy,
    releaseHistory: activation.history,
    /** The release the server runs, and whether it runs (after a refresh: as the server says). */
    liveRelease: serverState.release,
    running: serverState.running,
    /** With HTTPS: the certificate's state (valid, missing, expired, names-differ) and expiry, as of the last up or
     * refresh; with tls.mode off: state "off" (an undefined output would make Pulumi warn on every run). */
    certificate: certState
      ? pulumi.all([certState.certificate, certState.notAfter]).apply(([state, notAfter]) => ({ state, notAfter }))
      : { state: "off" },
  };
});
