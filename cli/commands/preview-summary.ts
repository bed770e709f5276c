// fdeploy preview-summary: a stack's `pulumi preview --json` as a few Markdown lines for a CI job
// summary (examples/ci/): per app the release it deploys, what changes, the migrations to apply and
// the strategy. Reads only the preview (no Pulumi CLI, no server): the steps' inputs say it all.
// --steps also lists each changing step on stderr (the job's log), so that one `preview --json` is the
// CI job's only preview.
import * as fs from "fs";
import { Command } from "commander";
import { defaultStrategy, NAMESPACE } from "../../components/config";
import { stackCommand, StackOpts } from "../lib/command";
import { FdeployError } from "../lib/errors";

export function register(program: Command): void {
  stackCommand(program, "preview-summary", "a `pulumi preview --json` of the stack as Markdown (release, changes, migrations, strategy)")
    .option("--preview <file>", "the output of `pulumi preview --json --stack <name>` (- : stdin)", "-")
    .option("--steps", "also list each step that changes, with the inputs that differ, on stderr (the CI log)")
    .action((opts: StackOpts & { preview: string; steps?: boolean }) => {
      let preview: Preview;
      try {
        preview = JSON.parse(fs.readFileSync(opts.preview === "-" ? 0 : opts.preview, "utf8"));
      } catch (e: any) {
        throw new FdeployError(`--preview ${opts.preview}: not the output of pulumi preview --json (${e.message})`, 2);
      }
      process.stdout.write(previewSummary(preview, opts.stack));
      if (opts.steps) process.stderr.write(changedSteps(preview).join("\n") + "\n");
    });
}

interface State {
  type: string;
  parent?: string;
  inputs?: Record<string, any>;
  outputs?: Record<string, any>;
}

interface Step {
  op: string;
  urn: string;
  diffReasons?: string[];
  oldState?: State;
  newState?: State;
}

export interface Preview {
  config?: Record<string, string>;
  steps?: Step[];
  diagnostics?: { urn?: string; message: string; severity: string }[];
  changeSummary?: Record<string, number>;
}

/** What the preview says of one FlaskApp. */
export interface AppChange {
  app: string;
  /** The release the up deploys, the one before (undefined on a first deploy), and whether it is a rollback's pin. */
  release?: { id: string; before?: string; pinned: boolean };
  /** The app's parts that change, as "<part> (<ops>)" (changedParts). */
  changes: string[];
  /** Migrations to apply ("0003_add_pinned"), changed ones ("0002_x (changed)"), or a rollback's "down to …". */
  migrations: string[];
  strategy: string;
}

const CHANGING = new Set(["create", "update", "replace", "create-replacement", "delete", "delete-replaced", "import"]);
const urnName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);
const urnStack = (urn: string) => urn.split(":")[2];
const triggers = (s?: State): string[] => (Array.isArray(s?.inputs?.triggers) ? s!.inputs!.triggers.filter((t: unknown) => typeof t === "string") : []);

/** The stack of a preview, from its steps' URNs. */
export function previewStack(preview: Preview): string | undefined {
  const urn = preview.steps?.find((s) => s.urn)?.urn;
  return urn ? urnStack(urn) : undefined;
}

const FLASK_APP = "flaskdeploy:index:FlaskApp";
/** Steps named <app>-<suffix> (FlaskApp names its children so): where a preview names its apps. */
const APP_STEPS = ["-release-install", "-activation-switch", "-migrations-apply", "-health-probe"];
const typeOf = (urn: string) => urn.split("::")[2]?.split("$").pop();

/**
 * Per FlaskApp the preview changes (its steps: `pulumi preview --json` lists only what changes, and the stack):
 * what its up would do. No app changes: one entry for the stack's app, as its outputs say.
 */
export function appChanges(preview: Preview, stack: string): AppChange[] {
  const steps = (preview.steps ?? []).filter((s) => typeof s.urn === "string");
  const underApp = steps.filter((s) => s.urn.split("::")[2]?.startsWith(`${FLASK_APP}$`));
  const apps = new Set<string>();
  for (const s of steps) {
    if (typeOf(s.urn) === FLASK_APP) apps.add(urnName(s.urn));
    const parent = (s.newState ?? s.oldState)?.parent;
    if (parent && typeOf(parent) === FLASK_APP) apps.add(urnName(parent));
  }
  for (const s of underApp) {
    const suffix = APP_STEPS.find((x) => urnName(s.urn).endsWith(x));
    if (suffix) apps.add(urnName(s.urn).slice(0, -suffix.length));
  }
  if (!apps.size) apps.add("");
  // a step's app: the longest app name its own name starts with
  const names = [...apps].sort((a, b) => b.length - a.length);
  const appOf = (s: Step) => names.find((a) => urnName(s.urn).startsWith(`${a}-`)) ?? (apps.size === 1 ? names[0] : undefined);
  const outputs = steps.find((s) => typeOf(s.urn) === "pulumi:pulumi:Stack")?.oldState?.outputs ?? {};
  const setting = preview.config?.[`${NAMESPACE}:strategy`];
  return [...apps].map((app) => {
    const mine = underApp.filter((s) => appOf(s) === app);
    const step = (name: string) => mine.find((s) => urnName(s.urn) === `${app}-${name}`);
    const install = step("release-install");
    const activation = step("activation-switch");
    const [oldSwitch, newSwitch] = [stdinParams(activation?.oldState), stdinParams(activation?.newState)];
    // the release: the install step's trigger when it runs; else the switch's (unchanged) or the stack's output
    const before = triggers(install?.oldState)[0] ?? str(oldSwitch.RELEASE_ID) ?? (apps.size === 1 ? str(outputs.releaseId) : undefined);
    const id = triggers(install?.newState)[0] ?? str(newSwitch.RELEASE_ID) ?? (install ? undefined : before);
    const apply = step("migrations-apply");
    return {
      app,
      release: id === undefined ? undefined : { id, before, pinned: stdinParams(install?.newState).PINNED !== undefined },
      changes: changedParts(mine.filter((s) => CHANGING.has(s.op)), app),
      migrations: apply && CHANGING.has(apply.op) ? newMigrations(triggers(apply.oldState), triggers(apply.newState)) : [],
      // the switch's own parameter when the preview knows it, else the setting (or its default)
      strategy: str(newSwitch.STRATEGY) ?? setting ?? defaultStrategy(stack),
    };
  });
}

/** The app's parts that change, as "<part> (<ops>)": a part is a component of the app (release, env, …; its steps
 * grouped) or a resource of its own (server-state), named without the app's prefix. */
function changedParts(steps: Step[], app: string): string[] {
  const parts = new Map<string, Set<string>>();
  for (const s of steps) {
    const parent = (s.newState ?? s.oldState)?.parent;
    const own = /^flaskdeploy:index:/.test(typeOf(s.urn) ?? "");
    const urn = own || !parent || typeOf(parent) === FLASK_APP ? s.urn : parent;
    const name = urnName(urn);
    const part = app && name.startsWith(`${app}-`) ? name.slice(app.length + 1) : name;
    if (!parts.has(part)) parts.set(part, new Set());
    parts.get(part)!.add(s.op.replace(/^(create|delete)-replacement$|^delete-replaced$/, "replace"));
  }
  return [...parts].map(([part, ops]) => `${part} (${[...ops].join(", ")})`);
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** A remote step's JSON parameters (its stdin), when the preview knows them. */
function stdinParams(s?: State): Record<string, unknown> {
  try {
    const v = JSON.parse(s?.inputs?.stdin ?? "");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};   // unknown until the up (Pulumi's placeholder), or no JSON
  }
}

/** The migration runner's triggers ("0003_name checksum", or "down to the schema of release X") that are new. */
export function newMigrations(before: string[], after: string[]): string[] {
  const had = new Set(before.map((t) => t.split(" ")[0]));
  return after.filter((t) => !before.includes(t)).map((t) => {
    const [name] = t.split(" ");
    if (!/^\d+_/.test(name)) return t;   // a rollback's "down to the schema of release …"
    return had.has(name) ? `${name} (changed)` : name;
  });
}

const SIGN: Record<string, string> = { create: "+", delete: "-", update: "~", replace: "+-", "create-replacement": "++", "delete-replaced": "--", import: "=" };

/** The preview's changing steps, one line each: "~ update <type> <name> (<inputs that differ>)". */
export function changedSteps(preview: Preview): string[] {
  const steps = (preview.steps ?? []).filter((s) => typeof s.urn === "string" && CHANGING.has(s.op));
  if (!steps.length) return ["no resource changes"];
  return steps.map((s) => `${SIGN[s.op] ?? "?"} ${s.op} ${typeOf(s.urn)} ${urnName(s.urn)}${s.diffReasons?.length ? ` (${s.diffReasons.join(", ")})` : ""}`);
}

const code = (s: string) => `\`${s.replace(/`/g, "'")}\``;
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The Markdown summary of PREVIEW (STACK: the stack it must be of, when given; an org/project/ prefix is not in URNs). */
export function previewSummary(preview: Preview, stack?: string): string {
  const of = previewStack(preview);
  if (!of) throw new FdeployError("the preview has no steps: not the output of pulumi preview --json", 2);
  if (stack && stack.split("/").pop() !== of) throw new FdeployError(`--preview: a preview of stack ${of}, not ${stack} (pulumi preview --json --stack ${stack})`, 2);
  const totals = Object.entries(preview.changeSummary ?? {}).filter(([op, n]) => n > 0 && op !== "same")
    .map(([op, n]) => `${n} to ${op}`);
  const same = preview.changeSummary?.same ?? 0;
  const lines = [`### flask-deploy preview of stack ${code(of)}`, "",
    `${totals.length ? totals.join(", ") : "no changes"}${same ? `, ${same} unchanged` : ""}`, ""];
  const apps = appChanges(preview, of);
  for (const a of apps) {
    if (apps.length > 1) lines.push(`#### app ${code(a.app)}`, "");
    const r = a.release;
    const release = !r ? "—"
      : r.pinned ? `rollback to ${code(r.id)}${r.before && r.before !== r.id ? ` (from ${code(r.before)})` : ""}`
      : r.before === r.id ? `${code(r.id)} (unchanged)`
      : `${code(r.id)} (new${r.before ? `; replaces ${code(r.before)}` : ": first deploy"})`;
    lines.push("| | |", "|---|---|",
      `| release | ${release} |`,
      `| changes | ${a.changes.length ? cell(a.changes.join(", ")) : "none"} |`,
      `| migrations to apply | ${a.migrations.length ? cell(a.migrations.map(code).join(", ")) : "none"} |`,
      `| strategy | ${a.strategy} |`, "");
  }
  const warnings = (preview.diagnostics ?? []).filter((d) => d.severity === "warning" || d.severity === "error");
  if (warnings.length) {
    lines.push("**Warnings**", "", ...warnings.map((d) => `- ${cell(d.message.trim().replace(/^(warning|error): /, "").split("\n")[0]).slice(0, 300)}`), "");
  }
  return lines.join("\n");
}
