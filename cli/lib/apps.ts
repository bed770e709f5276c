// The apps of a stack, as its state holds them (`pulumi stack export --show-secrets`): each FlaskApp
// component (type flaskdeploy:index:FlaskApp, in any program, exported or not) and the record it
// registers for fdeploy (its `fdeploy` output: app name, server, release pin key). Which one a command
// acts on: the only one, or --app <name> (the component's name, or its appName).
import type { FdeployRecord } from "../../components/flask-app";
import { FdeployError } from "./errors";

export const FLASK_APP_TYPE = "flaskdeploy:index:FlaskApp";
// how `stack export` marks a secret value (plaintext with --show-secrets)
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** One app of a stack: the FlaskApp's resource name and its record (undefined: registered by a version before it). */
export interface StackApp {
  name: string;
  record?: FdeployRecord;
}

/** V with every secret value of an export replaced by its plaintext (a ciphertext left: a FdeployError). */
export function unsecret(v: any): any {
  if (Array.isArray(v)) return v.map(unsecret);
  if (!v || typeof v !== "object") return v;
  if (v[SECRET_SIG] !== undefined) {
    if (typeof v.plaintext !== "string") throw new FdeployError("the stack's state holds a secret fdeploy could not read (exported without --show-secrets?)");
    return unsecret(JSON.parse(v.plaintext));
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unsecret(x)]));
}

/**
 * The FlaskApps in EXPORT (the JSON of `pulumi stack export`), sorted by name: the state's own order
 * follows which resource finished first, which differs from one `up` to the next.
 */
export function appsInState(exported: any): StackApp[] {
  const resources: any[] = exported?.deployment?.resources ?? [];
  return resources.filter((r) => r.type === FLASK_APP_TYPE && !r.delete).map((r) => {
    const record = unsecret(r.outputs?.fdeploy);
    return { name: String(r.urn).split("::").pop()!, ...(record ? { record } : {}) };
  }).sort((a, b) => a.name.localeCompare(b.name));
}

const label = (a: StackApp) => a.record ? `${a.name} (app ${a.record.appName} on ${a.record.server.user}@${a.record.server.host})` : a.name;

/**
 * The app of APPS that a command acts on: WANTED (its resource name, else its appName), or the only one.
 * Throws a FdeployError listing the stack's apps when that is not one app.
 */
export function chooseApp(apps: StackApp[], wanted: string | undefined, stack: string): StackApp & { record: FdeployRecord } {
  const list = apps.map(label).join(", ");
  let app: StackApp | undefined;
  if (wanted !== undefined) {
    app = apps.find((a) => a.name === wanted) ?? apps.find((a) => a.record?.appName === wanted);
    if (!app) throw new FdeployError(`--app ${wanted}: stack ${stack} holds no such app; its apps: ${list || "none"}`, 2);
  } else if (apps.length > 1) {
    throw new FdeployError(`stack ${stack} holds ${apps.length} apps: ${list}; choose one with --app <name>`, 2);
  } else {
    app = apps[0];
  }
  if (!app.record) {
    throw new FdeployError(`app ${app.name} of stack ${stack} has no fdeploy record in its state yet (an older version deployed it, or its ` +
      `first up failed): pulumi up --stack ${stack}`, 3);
  }
  return app as StackApp & { record: FdeployRecord };
}
