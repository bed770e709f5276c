// A user program with two FlaskApps on one server (the sample app twice, as two apps with their own
// names and sites), settings as plain values validated by flaskAppArgs (<app>AppDir: that app's own copy). Used by
// tests/e2e/two-apps.test.ts.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { FlaskApp, flaskAppArgs } from "../../../components";

const cfg = new pulumi.Config();
const projectDir = path.resolve(__dirname, "../../..");   // appDir and migrationsDir are paths in the repo
const server = { host: cfg.require("host"), privateKeyPath: cfg.require("keyPath"), hostKey: cfg.require("hostKey") };
const app = (appName: string) => flaskAppArgs({
  appName, server, serverName: `${appName}.test`, appDir: cfg.get(`${appName}AppDir`) ?? cfg.require("appDir"), migrationsDir: "migrations",
  workers: "1", healthTimeoutSeconds: "15", env: { APP_GREETING: `Hello from ${appName}` }, secrets: { SECRET_KEY: `${appName}-secret` },
}, projectDir);

const shop = new FlaskApp("shop", app("shop"));
const blog = new FlaskApp("blog", app("blog"));

export const shopRelease = shop.releaseId;
export const blogRelease = blog.releaseId;
export const shopUrl = shop.url;
export const blogUrl = blog.url;
export const staging = [shop.stagingDir, blog.stagingDir];
