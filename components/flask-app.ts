// FlaskApp: one Flask app on one server, as a Pulumi component. The deployment story: validated
// settings in, then the server reconciled step by step. Each step is one component in this folder;
// every later `pulumi up` runs only the steps whose inputs changed. Every child is named
// `<name>-<step>` with this component as its parent, so one program can hold several FlaskApps
// (two apps, on one server or two), each with its own URNs and staging folder.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { canarySettings, ConfigError, DeployConfig, NAMESPACE, pgBackupApplies, ServerConfig, tlsSettings } from "./config";
import { DatabaseEnv, databaseEnv } from "./database";
import { beforeChangeRecord } from "./config/before-change";
import { DatabaseRecord, databaseRecord, pinnedCaFile } from "./config/database";
import { DatabaseServer } from "./database-server";
import { appPin, appPinKey } from "./config/pin";
import { connectionFor } from "./connection";
import { AppIdentity } from "./app-identity";
import { ScriptBundle } from "./remote-script";
import { BaseSystem } from "./base-system";
import { Release } from "./release";
import { AppEnvironment, deployPaths, withDeployPaths } from "./environment";
import { checkMigrationsCached, Migration, MigrationRunner } from "./migrations";
import { lastOutputs, resolveMigrationsDir } from "./migrations-default";
import { warnRollbackLoss } from "./rollback-preview";
import { appWarnings } from "./app-warnings";
import { GunicornService } from "./gunicorn";
import { NginxSite } from "./nginx";
import { TlsCertificate } from "./tls";
import { SiteSettings } from "./nginx-site";
import { HealthCheck } from "./health-check";
import { ServerState } from "./server-state";
import { CertificateState } from "./certificate-state";
import { SharedPaths } from "./shared-paths";
import { ReleaseCommands } from "./release-commands";
import { Preflight } from "./preflight";
import { Backup } from "./backup";
import { JobScheduleCheck, ScheduledJobs } from "./jobs";
import { DockerImage } from "./docker-image";
import { quickError } from "./program";
import { STAGING_ROOT, stagingKey } from "./upload";
import { FleetHost, FleetSwitch } from "./fleet-switch";
import { fleetDatabase } from "./fleet-database";
import { LoadBalancer } from "./load-balancer";
import { Activation, activationParams, describeCanary, HistoryEntry, switchWaits } from "./activation";
import { appServers } from "./config/servers";
import { FleetRecord, fleetRecord, sshTarget } from "./fleet-record";
import type { PeerHost } from "./release-peer";
import { balancerTls } from "./balancer-tls";
import { previousHosts, serverOrderProblem } from "./server-order";

/**
 * A FlaskApp's settings: the validated config (components/config.ts: one schema, the keys README documents;
 * build it with flaskAppArgsFromConfig() or flaskAppArgs()). Plain values, not Inputs: they decide at plan time
 * which steps exist, which local folders are hashed and uploaded, and the remote command lines.
 */
export type FlaskAppArgs = DeployConfig & {
  /** Where relative paths (appDir, migrationsDir, tls.caBundle) resolve; default: the program's working directory. */
  projectDir?: string;
  /** Alias the children to the names the single-app program before FlaskApp gave them (`release`, `base`, … with no
   * parent): a stack it deployed upgrades with no replacement. flaskAppArgsFromConfig() sets it. */
  legacyNames?: boolean;
  /** The stack config key of this app's release pin, when `release` was read from it (flaskAppArgsFromConfig():
   * `flask-deploy:release`). Unset: the component reads `flask-deploy:apps.<name>.release` itself (README "Releases,
   * history and rollback"). */
  releaseKey?: string;
  /** The PostgreSQL server of `database` (engine postgres), when the program shares one between apps; unset: the
   * app makes its own for `database.host` (README "PostgreSQL"). */
  databaseServer?: DatabaseServer;
};

/** What `fdeploy` reads from the stack's state to operate an app (a program need export nothing). */
export interface FdeployRecord {
  appName: string;
  server: Pick<ServerConfig, "host" | "port" | "user" | "hostKey" | "privateKeyPath">;
  /** The stack config key that pins this app's release (fdeploy rollback sets it), and the release it pinned. */
  releaseKey: string;
  release?: string;
  backup: boolean;
  /** Only with backup.beforeChange replica: a rollback's undo is the replica's restore point (fdeploy rollback says so). */
  beforeChange?: "replica";
  jobs: string[];
  /** With `database` set: where its PostgreSQL runs (fdeploy status asks it). */
  database?: DatabaseRecord;
  /** A fleet (loadBalancer set) only: its app servers (`servers` order) and balancer (fdeploy --host, status). */
  fleet?: FleetRecord;
}

/** The outputs a FlaskApp registers (the stack outputs of this repo's index.ts). */
export interface FlaskAppOutputs {
  url: string;
  releaseId: string;
  /** The release appDir holds; differs from releaseId while a rollback pins an older one. */
  appDirRelease: string;
  server: string;
  appPath: string;
  schemaVersion: pulumi.Input<number>;
  /** The SQL migrations folder this up ran with ('none': none); an unset migrationsDir reads it (migrations-default.ts). */
  migrationsDir: string;
  strategy: string;
  releaseHistory: pulumi.Input<any[]>;
  /** The release the server runs, and whether it runs (after a refresh: as the server says). */
  liveRelease: pulumi.Input<string>;
  running: pulumi.Input<boolean>;
  /** With HTTPS: the certificate's state (valid, missing, expired, names-differ) and expiry, as of the last up or
   * refresh; with tls.mode off: state "off" (an undefined output would make Pulumi warn on every run). */
  certificate: pulumi.Input<{ state: string; notAfter?: string }>;
  fdeploy: FdeployRecord;
  /** A fleet (loadBalancer set) only: each app server's release after the last rollout that finished. */
  hosts?: pulumi.Input<Record<string, string>>;
}

type Out<K extends keyof FlaskAppOutputs> = pulumi.Output<pulumi.Unwrap<FlaskAppOutputs[K]>>;

/** The outputs a FlaskApp registers (and a stack exports): every key of FlaskAppOutputs. */
const OUTPUT_NAMES: (keyof FlaskAppOutputs)[] = ["url", "releaseId", "appDirRelease", "server", "appPath", "schemaVersion",
  "migrationsDir", "strategy", "releaseHistory", "liveRelease", "running", "certificate", "fdeploy"];

export class FlaskApp extends pulumi.ComponentResource {
  declare public readonly url: Out<"url">;
  declare public readonly releaseId: Out<"releaseId">;
  declare public readonly appDirRelease: Out<"appDirRelease">;
  declare public readonly server: Out<"server">;
  declare public readonly appPath: Out<"appPath">;
  declare public readonly schemaVersion: Out<"schemaVersion">;
  declare public readonly migrationsDir: Out<"migrationsDir">;
  declare public readonly strategy: Out<"strategy">;
  declare public readonly releaseHistory: Out<"releaseHistory">;
  declare public readonly liveRelease: Out<"liveRelease">;
  declare public readonly running: Out<"running">;
  declare public readonly certificate: Out<"certificate">;
  declare public readonly fdeploy: Out<"fdeploy">;
  declare public readonly hosts?: Out<"hosts">;
  /** This app's staging folder (.fdeploy-staging/<hash of project, stack and name>/). */
  public readonly stagingDir: string;

  constructor(name: string, args: FlaskAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:FlaskApp", name, {}, opts);   // no inputs recorded: args hold secrets
    const staging = stagingKey(name);
    this.stagingDir = path.join(STAGING_ROOT, staging);
    // the steps are created asynchronously (the migrations default reads the stack's last outputs; the identity's
    // registration goes to the engine first): the outputs follow them
    const pinned = releasePin(name, args);
    const done = this.deploy(name, { ...args, release: pinned.release }, staging)
      .then((o) => ({ ...o, fdeploy: fdeployRecord(args, pinned) }))
      .catch((e: unknown) => { throw quickError(e); });
    const out = <K extends keyof FlaskAppOutputs>(k: K): Out<K> => pulumi.output(done).apply((o) => o[k]) as unknown as Out<K>;
    const outputs = Object.fromEntries([...OUTPUT_NAMES, ...(args.loadBalancer !== undefined ? ["hosts" as const] : [])].map((k) => [k, out(k)]));
    Object.assign(this, outputs);   // the readonly fields above, one per output
    this.registerOutputs(outputs);
  }

  private async deploy(name: string, cfg: FlaskAppArgs, staging: string): Promise<Omit<FlaskAppOutputs, "fdeploy">> {
    const projectDir = cfg.projectDir ?? process.cwd();
    // a child's options: this parent; with legacyNames, also its old top-level name
    const child = (step: string): { parent: pulumi.Resource; aliases?: pulumi.Alias[] } =>
      cfg.legacyNames ? { parent: this, aliases: [{ name: step, parent: pulumi.rootStackResource }] } : { parent: this };
    const n = (step: string) => `${name}-${step}`;

    // 1. Migration files: validated before any resource exists.
    // unset migrationsDir: <appDir>/migrations; a stack deployed under the old default keeps it (with a warning)
    // the stack's outputs of its last up (one StackReference, cached by lastOutputs)
    const last = (keys?: string[]) => lastOutputs(keys, n("previous-outputs"), child("previous-outputs"));
    const resolvedMigrations = await resolveMigrationsDir(cfg, () => last());
    // an app that would run unsafely (no SECRET_KEY; debug on in production): warnings naming the fix
    for (const w of appWarnings(cfg, path.resolve(projectDir, cfg.appDir), pulumi.getStack())) pulumi.log.warn(w);
    const migrationsDir = resolvedMigrations ? path.resolve(projectDir, resolvedMigrations) : undefined;
    const migrationFiles = migrationsDir ? checkMigrationsCached(migrationsDir, staging) : [];
    const app = cfg.appName;
    const appRoot = `/srv/${app}`;
    // preview with a release pinned: the down migrations that up runs and what they drop
    await warnRollbackLoss(cfg.release, migrationsDir, appRoot, last);
    const tier = { projectDir, resolvedMigrations, migrationsDir, migrationFiles };
    if (cfg.loadBalancer === undefined) return this.deployHost(name, cfg, staging, tier);
    return this.deployFleet(name, cfg, staging, tier, last);
  }

  /** A fleet (servers behind loadBalancer): every host staged in parallel, one FleetSwitch, the balancer. */
  private async deployFleet(name: string, cfg: FlaskAppArgs, staging: string, tier: AppTier,
    last: (keys: string[]) => Promise<Record<string, unknown>>): Promise<Omit<FlaskAppOutputs, "fdeploy">> {
    const servers = appServers(cfg);
    // each server keeps its place in `servers` (its resources are named by it): checked against the last up
    const moved = serverOrderProblem(previousHosts((await last(["server"])).server), servers.map((s) => s.host));
    if (moved) throw quickError(new ConfigError([moved]));
    const balancer = cfg.loadBalancer === "external" || cfg.loadBalancer === undefined ? undefined : new LoadBalancer(`${name}-balancer`, {
      server: cfg.loadBalancer, appName: cfg.appName, hosts: servers.map((s) => s.host), serverName: cfg.serverName, healthPath: cfg.healthPath,
      limits: cfg.timeouts, drainSeconds: cfg.rollout.drainSeconds, staging, ...balancerTls(cfg, tier.projectDir),
    }, { parent: this });
    const canaryAtBalancer = balancer !== undefined && servers.length > 1 && canarySettings(cfg) !== undefined;
    const joined: { host: FleetHost; after: pulumi.Resource[] }[] = [];
    let release!: (s: FleetSwitch) => void;
    const fleetSwitch = new Promise<FleetSwitch>((resolve) => { release = resolve; });
    const join = (i: number, host: FleetHost, after: pulumi.Resource[], releaseId: pulumi.Input<string>): Promise<FleetSwitch> => {
      joined[i] = { host, after };
      if (joined.filter(Boolean).length === servers.length) {
        release(new FleetSwitch(`${name}-fleet`, {
          appName: cfg.appName, releaseId, hosts: joined.map((j) => j.host), balancer, batchSize: cfg.rollout.batchSize,
          ...(canaryAtBalancer ? { canary: canarySettings(cfg) } : {}),
          drainSeconds: cfg.rollout.drainSeconds, healthTimeoutSeconds: cfg.healthTimeoutSeconds, after: joined.flatMap((j) => j.after),
        }, { parent: this }));
      }
      return fleetSwitch;
    };
    // HTTPS ends at the balancer (balancer-tls.ts): the hosts serve plain HTTP behind it
    const atBalancer = balancer !== undefined && cfg.tls !== undefined && cfg.tls.mode !== "off";
    const hostCfg = atBalancer ? { tls: undefined } : {};
    const database = fleetDatabase(name, cfg, servers, staging, this);
    let firstHost!: (h: PeerHost) => void;
    const first = new Promise<PeerHost>((resolve) => { firstHost = resolve; });
    const outs = await Promise.all(servers.map((server, index) =>
      this.deployHost(name, { ...cfg, server, ...hostCfg }, staging, tier, { index, join, database, first, firstHost, canaryAtBalancer })));
    const fs = await fleetSwitch;
    return {
      ...outs[0], server: servers.map((s) => `${s.user}@${s.host}:${s.port}`).join(", "), releaseHistory: fs.history, hosts: fs.hosts,
      // the hosts serve HTTP behind a balancer that serves HTTPS
      ...(atBalancer ? { url: outs[0].url.replace(/^http:/, "https:") } : {}),
    };
  }

  /** The app on one server: the whole graph for a single server; with FLEET, host FLEET.index of a fleet
   * (names of hosts after the first end in -h2, -h3 …; the migrations, release commands and jobs run on the first). */
  private async deployHost(name: string, cfg: FlaskAppArgs, staging: string, tier: AppTier, fleet?: FleetSlot): Promise<Omit<FlaskAppOutputs, "fdeploy">> {
    const { projectDir, resolvedMigrations, migrationsDir: tierMigrations, migrationFiles } = tier;
    const suffix = fleet && fleet.index > 0 ? `-h${fleet.index + 1}` : "";
    const first = suffix === "";
    const migrationsDir = first ? tierMigrations : undefined;
    const child = (step: string): { parent: pulumi.Resource; aliases?: pulumi.Alias[] } =>
      cfg.legacyNames && first ? { parent: this, aliases: [{ name: step, parent: pulumi.rootStackResource }] } : { parent: this };
    const n = (step: string) => `${name}-${step}${suffix}`;
    const app = cfg.appName;
    const appRoot = `/srv/${app}`;
    const connection = connectionFor(cfg.server);
    const common = { connection, appName: app };

    // 2. The app's identity on its server (an in-place rename is refused at preview), the scripts every
    //    step runs, then the base system (packages, user, directories).
    const identity = new AppIdentity(n("identity"), { appName: app, host: cfg.server.host }, child("identity"));
    // Every remote step waits for the identity, whose check starts the engine's dynamic-resource provider (a Node.js
    // process, 0.5–2 s): yield until its registration has gone to the engine, so that boot runs while the rest of
    // the program (hashing the app and scripts, the other registrations) does.
    await identity.sent();
    const bundle = new ScriptBundle(n("scripts"), {
      ...common, sudo: cfg.server.user !== "root", limits: cfg.timeouts, after: [identity], staging, stepPrefix: `${name}-`,
    }, child("scripts"));
    const docker = cfg.runtime === "docker" ? cfg.docker! : undefined;
    if (docker && cfg.server.user !== "root") {
      pulumi.log.warn(`runtime docker: the Docker provider connects as ${cfg.server.user} and cannot use sudo; that user must be in ` +
        "the server's docker group, which is root-equivalent (README \"Docker runtime\")");
    }
    // scheduled jobs (optional, `jobs`): the server checks their schedules before anything changes
    const hasJobs = first && Object.keys(cfg.jobs).length > 0;
    const jobCheck = hasJobs ? new JobScheduleCheck(n("job-schedules"), { ...common, bundle, jobs: cfg.jobs }, child("job-schedules")) : undefined;
    const base = new BaseSystem(n("base"), {
      ...common, bundle, appRoot, appUser: app, docker: docker !== undefined, after: jobCheck ? [jobCheck.step] : [],
    }, child("base"));

    // 3. The release (code + venv; or a kept one that a rollback pinned), its environment, its shared
    //    paths and the service that runs it. A fleet's later hosts copy a pinned release they never ran from the first.
    const here: PeerHost = { target: sshTarget(cfg.server), bundle };
    if (fleet && first) fleet.firstHost(here);
    const peer = fleet && !first && cfg.release !== undefined ? { from: await fleet.first, to: here } : undefined;
    const release = new Release(n("release"), {
      ...common, bundle, appDir: path.resolve(projectDir, cfg.appDir), pinned: cfg.release, peer, docker: docker !== undefined, staging,
      after: [base.ready],
    }, child("release"));
    // runtime docker: the release as an image built on the server's engine (a rollback runs a kept one)
    const image = docker && cfg.release === undefined ? new DockerImage(n("image"), {
      server: cfg.server, appName: app, staged: release.staged, releaseId: release.releaseId, baseImage: docker.baseImage, staging,
      hostSuffix: suffix, after: [base.ready],
    }, child("image")) : undefined;
    // env and secrets values may name the deploy's paths: ${APP_ROOT}, ${SHARED}, ${DATABASE_PATH}
    const paths = deployPaths(appRoot);
    const databasePath = paths.DATABASE_PATH;
    const env = withDeployPaths(cfg.env, paths);
    // with `database` set: DATABASE_URL (a secret), and the app's role and database on its server first
    // (a fleet's one database: each host pins the server's certificate itself)
    const fleetDb = fleet?.database;
    const database = fleetDb ? { ...fleetDb, ready: [...fleetDb.ready, ...(fleetDb.pinOn ? [fleetDb.pinOn(n("database-pin"), connection, bundle, [base.ready])] : [])] }
      : databaseEnv(n("database"), cfg, { ...common, bundle, staging, server: cfg.databaseServer, after: [base.ready] }, this);
    const secrets = { ...withDeployPaths(cfg.secrets, paths), ...database.env };
    const environment = new AppEnvironment(n("env"), {
      ...common, bundle, after: [base.ready, ...database.ready],
      plain: { ...env, DATABASE_PATH: databasePath },
      secrets: pulumi.secret(secrets),
    }, child("env"));
    // the release's shared paths (Flask's instance folder when the app uses it) and rendered shared files
    const shared = cfg.sharedDirs.length || cfg.sharedFiles.length ? new SharedPaths(n("shared"), {
      ...common, bundle, releaseId: release.releaseId, dirs: cfg.sharedDirs, files: cfg.sharedFiles,
      values: pulumi.secret({ ...env, DATABASE_PATH: databasePath, ...secrets }), after: [release.installed],
    }, child("shared")) : undefined;
    const dockerEnvNames = [...Object.keys(cfg.env), ...Object.keys(secrets), "DATABASE_PATH"];
    const service = new GunicornService(n("gunicorn"), {
      ...common, bundle, workers: cfg.workers, appModule: cfg.appModule, timeoutSeconds: cfg.proxyTimeoutSeconds,
      docker: docker ? {
        envNames: dockerEnvNames, sharedDirs: cfg.sharedDirs,
        memory: docker.memory, cpus: docker.cpus, pgPin: pinnedCaFile(cfg),
      } : undefined,
      after: [base.ready, environment], // the unit reads the environment file
    }, child("gunicorn"));

    // 3b. Offsite backups (optional, `backup.replica`): on a brand-new server the databases are restored
    //     from the replica before migrations run and the app starts; then Litestream replicates them.
    //     With a PostgreSQL the stack manages, `backup` is pgBackRest's on the database server (components/database.ts).
    const backup = cfg.backup === undefined || pgBackupApplies(cfg) ? undefined : new Backup(n("backup"), {
      ...common, bundle, appRoot, backup: cfg.backup, secrets: pulumi.secret(cfg.backupSecrets ?? {}), staging, after: [base.ready],
    }, child("backup"));
    const restored = backup ? [backup.step] : [];

    // 4. The database schema and the switch to the release (health-checked). A deploy proves the release
    //    loads (preflight), migrates, runs the release commands, then switches; a rollback switches first,
    //    then brings the schema down to the pinned release's version. Migrations are expand/contract
    //    (README), so either way the code that runs in between works with the schema it meets.
    const canary = canarySettings(cfg);
    // a fleet's canary is at its balancer (weights across hosts): each host itself switches blue-green
    const hostCanary = fleet?.canaryAtBalancer ? undefined : canary;
    if (canary && (!fleet || fleet.index === 0)) pulumi.log.info(describeCanary(canary, fleet?.canaryAtBalancer));
    const migrationArgs = (dir: string) => ({
      ...common, bundle, migrationsDir: dir, databaseUrl: database.env.DATABASE_URL, migrations: migrationFiles, keepBackups: cfg.keepBackups, keepBackupsBytes: cfg.keepBackupsBytes,
      beforeChange: cfg.backup?.beforeChange, staging,
    });
    const activationArgs = {
      ...common, bundle, releaseId: release.releaseId, appModule: cfg.appModule,
      strategy: hostCanary || !canary ? cfg.strategy : "blue-green" as const, canary: hostCanary, healthPath: cfg.healthPath,
      healthTimeoutSeconds: cfg.healthTimeoutSeconds, keepReleases: cfg.keepReleases, rollback: cfg.release !== undefined, ...(peer ? { fleetPeer: true } : {}),
      serviceRevision: service.revision, envRevision: environment.revision,
      sharedRevision: cfg.sharedFiles.some((f) => f.content !== undefined) ? shared?.revision : undefined,
      docker: docker ? { imageId: image ? image.imageId : `kept:${release.releaseId}` } : undefined,
    };
    const switchAfter = [release.installed, service.unit, environment, ...(shared ? [shared.step] : []), ...restored, ...(image ? [image.image] : [])];
    // one server: its Activation; a fleet: this host joins the one FleetSwitch (which waits for every host)
    const { host: sshHost, port: sshPort, user: sshUser, hostKey: sshKey, privateKeyPath: sshKeyPath } = cfg.server;
    const activate = async (after: pulumi.Resource[]): Promise<Switched> => fleet
      ? fleet.join(fleet.index, {
        target: { host: sshHost, port: sshPort, user: sshUser, hostKey: sshKey, ...(sshKeyPath ? { privateKeyPath: sshKeyPath } : {}) },
        bundle, stepName: `${n("activation")}-switch`, extraSeconds: switchWaits(activationArgs), params: activationParams(activationArgs),
      }, after, release.releaseId)
      : new Activation(n("activation"), { ...activationArgs, after }, child("activation"));
    let migrations: MigrationRunner | undefined, activation: Switched;
    if (cfg.release === undefined) {
      // the release loads with its staged settings before anything touches the database (python runtime)
      const preflight = docker ? undefined : new Preflight(n("preflight"), {
        ...common, bundle, releaseId: release.releaseId, appModule: cfg.appModule, healthPath: cfg.healthPath,
        healthTimeoutSeconds: cfg.healthTimeoutSeconds, envRevision: environment.revision, unitRevision: service.revision,
        after: [release.installed, environment, service.unit, ...(shared ? [shared.step] : []), ...restored],
      }, child("preflight"));
      const loaded = preflight ? [preflight.step] : [];
      migrations = migrationsDir ? new MigrationRunner(n("migrations"), {
        ...migrationArgs(migrationsDir), after: [release.installed, environment, ...restored, ...loaded],
      }, child("migrations")) : undefined;
      // the app's own release commands (e.g. flask db upgrade): after the SQL migrations, before the switch
      const releaseCommands = first && cfg.releaseCommands.length ? new ReleaseCommands(n("release-commands"), {
        ...common, bundle, releaseId: release.releaseId, commands: cfg.releaseCommands, keepBackups: cfg.keepBackups, keepBackupsBytes: cfg.keepBackupsBytes,
        beforeChange: cfg.backup?.beforeChange,
        docker: docker ? { envNames: dockerEnvNames, sharedDirs: cfg.sharedDirs } : undefined,
        after: [...switchAfter, ...loaded, ...(migrations ? [migrations.step] : [])],
      }, child("release-commands")) : undefined;
      const before = [...loaded, migrations?.step, releaseCommands?.step].filter((r): r is command.remote.Command => r !== undefined);
      activation = await activate([...switchAfter, ...before]);
    } else {
      activation = await activate(switchAfter);
      migrations = migrationsDir ? new MigrationRunner(n("migrations"), {
        ...migrationArgs(migrationsDir), downToSchemaOf: cfg.release, after: [activation.step],
      }, child("migrations")) : undefined;
    }
    // the switch, and under a rollback the schema brought down after it: what the jobs and the certificate wait for
    // (the site, the health probe and the server's state need only the switch: under a rollback they run beside it)
    const switched = [activation.step, ...(migrations ? [migrations.step] : [])];
    // 4b. Scheduled jobs: timers whose runs use the live release (`current`), set up after the switch.
    //     Without jobs there is no step; removing the last job deletes it, which removes every timer.
    if (hasJobs) new ScheduledJobs(n("jobs"), { ...common, bundle, jobs: cfg.jobs, after: switched }, child("jobs"));

    // 5. nginx, and a last check through it. With HTTPS on (tls.mode acme or custom), the certificate
    //    comes first: the site then serves it.
    const siteSettings: SiteSettings = {
      appName: app, appRoot, serverName: cfg.serverName, clientMaxBodySize: cfg.clientMaxBodySize,
      proxyTimeoutSeconds: cfg.proxyTimeoutSeconds, static: cfg.static, ...(hostCanary ? { canary: true } : {}),
      // a host behind the stack's balancer believes the client's address and scheme from it alone
      ...(cfg.loadBalancer !== undefined && cfg.loadBalancer !== "external" ? { balancer: cfg.loadBalancer.host } : {}),
    };
    const tlsCfg = tlsSettings(cfg);
    const tls = tlsCfg.mode === "acme"
      ? new TlsCertificate(n("tls"), {
        ...common, bundle, site: siteSettings, acmeServer: tlsCfg.acmeServer, email: tlsCfg.email,
        caBundlePath: tlsCfg.caBundlePath, projectDir, hstsMaxAgeSeconds: tlsCfg.hstsMaxAgeSeconds,
        after: switched,
      }, child("tls"))
      : tlsCfg.mode === "custom"
        ? new TlsCertificate(n("tls"), {
          ...common, bundle, site: siteSettings, custom: { certificate: tlsCfg.certificate, privateKey: tlsCfg.privateKey },
          projectDir, hstsMaxAgeSeconds: tlsCfg.hstsMaxAgeSeconds, after: switched,
        }, child("tls"))
        : undefined;
    const nginx = new NginxSite(n("nginx"), {
      ...common, bundle, ...(tls ? tls.site : siteSettings), after: [activation.step, ...(tls ? [tls.step] : [])],
    }, child("nginx"));
    new HealthCheck(n("health"), {
      ...common, bundle, serverName: cfg.serverName, healthPath: cfg.healthPath, timeoutSeconds: cfg.healthTimeoutSeconds,
      https: tls !== undefined,
      watch: [release.releaseId, nginx.step.stdout, activation.step.stdout, ...(tls ? [tls.step.stdout] : [])],
      after: [nginx.step, activation.step],
    }, child("health"));

    // 6. What the server really runs: read by `pulumi refresh` / `preview --refresh`, repaired by
    //    `up --refresh` (drift: a stopped app, a hand-edited site or environment, another live release).
    //    Read once the switch and the site are done, beside the health probe (not after it: one remote
    //    step less on the deploy's critical path).
    const { host, port, user, hostKey, privateKeyPath } = cfg.server;
    const settled = [nginx.step, activation.step];
    const serverState = new ServerState(n("server-state"), {
      server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) },
      appName: app, scriptsDir: bundle.remoteDir, release: release.releaseId,
    }, { ...child("server-state"), dependsOn: settled });
    // With HTTPS: the certificate on the server (refresh shows a missing or expired one; up --refresh issues it again).
    const certState = tls
      ? new CertificateState(n("certificate-state"), {
        server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) },
        appName: app, scriptsDir: bundle.remoteDir, names: cfg.serverName,
      }, { ...child("certificate-state"), dependsOn: settled })
      : undefined;

    const urlHost = cfg.serverName === "_" ? cfg.server.host : cfg.serverName.split(" ")[0];
    return {
      url: `${tls ? "https" : "http"}://${urlHost}/`,
      releaseId: release.releaseId,
      appDirRelease: release.appDirRelease,
      server: `${cfg.server.user}@${cfg.server.host}:${cfg.server.port}`,
      appPath: appRoot,
      schemaVersion: migrations ? migrations.schemaVersion : 0,
      migrationsDir: resolvedMigrations ?? "none",
      strategy: cfg.strategy,
      releaseHistory: activation.history,
      liveRelease: serverState.release,
      running: serverState.running,
      certificate: certState
        ? pulumi.all([certState.certificate, certState.notAfter]).apply(([state, notAfter]) => ({ state, notAfter }))
        : { state: "off" },
    };
  }
}

/** What the rest of a host's graph waits for: its Activation, or the fleet's switch. */
type Switched = { step: pulumi.Resource & { stdout: pulumi.Output<string> }; history: pulumi.Output<HistoryEntry[]> };
/** What every host of the app tier shares (resolved once). */
interface AppTier { projectDir: string; resolvedMigrations?: string; migrationsDir?: string; migrationFiles: Migration[] }
/** A host's place in a fleet: its index in `servers`, and how it joins the one FleetSwitch. */
interface FleetSlot {
  index: number;
  /** The first host (its SSH target and scripts), which the first host's deployHost gives: the others copy a pinned
   * release they never ran from it (release-peer.ts). */
  first: Promise<PeerHost>;
  firstHost: (h: PeerHost) => void;
  join: (i: number, host: FleetHost, after: pulumi.Resource[], releaseId: pulumi.Input<string>) => Promise<FleetSwitch>;
  /** The fleet's one database env (fleet-database.ts), when the stack manages its PostgreSQL server. */
  database?: DatabaseEnv;
  /** strategy canary on several hosts behind the stack's balancer: the steps are HAProxy's weights (the FleetSwitch's). */
  canaryAtBalancer?: boolean;
}

/** NAME's release pin: the key (args.releaseKey, else flask-deploy:apps.<name>.release, read here) and its release. */
function releasePin(name: string, args: FlaskAppArgs): { key: string; release?: string } {
  if (args.releaseKey) return { key: args.releaseKey, release: args.release };
  const key = appPinKey(NAMESPACE, name);
  const { release, problem } = appPin(new pulumi.Config(NAMESPACE).get("apps"), name, key);
  if (problem) throw quickError(new ConfigError([problem]));
  return { key, release: release ?? args.release };
}

function fdeployRecord(cfg: FlaskAppArgs, pin: { key: string; release?: string }): FdeployRecord {
  const { host, port, user, hostKey, privateKeyPath } = cfg.server;
  return {
    appName: cfg.appName, server: { host, port, user, hostKey, ...(privateKeyPath ? { privateKeyPath } : {}) },
    releaseKey: pin.key, ...(pin.release ? { release: pin.release } : {}), backup: cfg.backup !== undefined, ...beforeChangeRecord(cfg.backup),
    jobs: Object.keys(cfg.jobs), ...databaseRecord(cfg), ...fleetRecord(cfg),
  };
}
