// This stack's program: one Flask app, its settings read from the stack's `flask-deploy:*` config
// (Pulumi.<stack>.yaml and .env; README "Configuration"). The deployment story is the FlaskApp
// component (components/flask-app.ts); a program of your own can hold several.
import { FlaskApp, flaskAppArgsFromConfig } from "./components";

const app = new FlaskApp("app", flaskAppArgsFromConfig(__dirname));

export const url = app.url;
export const releaseId = app.releaseId;
/** The release appDir holds; differs from releaseId while a rollback pins an older one. */
export const appDirRelease = app.appDirRelease;
export const server = app.server;
export const appPath = app.appPath;
export const schemaVersion = app.schemaVersion;
export const migrationsDir = app.migrationsDir;
export const strategy = app.strategy;
export const releaseHistory = app.releaseHistory;
export const liveRelease = app.liveRelease;
export const running = app.running;
export const certificate = app.certificate;
// a fleet (servers behind a loadBalancer): each app server's release after the last rollout that finished
if (app.hosts) exports.hosts = app.hosts;
