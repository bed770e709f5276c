// The message rule (issue 34): every error the project prints names its cause and, on its first line (under
// 160 characters), the setting, command or file that fixes it. The messages are found in the sources
// (tests/unit/messages.ts), so a new one is checked without being listed here.
import * as assert from "assert";
import { configSchema } from "../../components/config";
import { agentMessages, Message, programMessages } from "./messages";

/** Every setting's path (server.hostKey, jobs.NAME.schedule, …) from the config schema. */
function settingPaths(schema: any, prefix = ""): string[] {
  const def = schema?._zod?.def ?? schema?._def;
  if (!def) return [];
  if (def.shape) {
    return Object.entries(def.shape as Record<string, unknown>).flatMap(([k, v]) => [prefix + k, ...settingPaths(v, `${prefix}${k}.`)]);
  }
  const inner = def.innerType ?? def.schema ?? def.in ?? def.valueType ?? def.element;
  return inner ? settingPaths(inner, def.valueType ? `${prefix}NAME.` : prefix) : [];
}
const SETTINGS = settingPaths(configSchema).map((p) => p.replace(/^jobs\.NAME\./, "jobs."));
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// a one-word setting that is also an English word (release, env, workers) counts when quoted or called a setting
const plainWord = (k: string) => /^[a-z]+$/.test(k);
const SETTING = new RegExp([
  "flask-deploy:", "\\{NAMESPACE\\}:", "\\{setting\\}", "(^|\\s|[(])--[a-z][\\w-]*",
  ...SETTINGS.filter((k) => !plainWord(k)).map((k) => `\\b${esc(k)}\\b`),
  ...SETTINGS.filter(plainWord).map((k) => `[\`'"]${k}[\`'"]|\\b${k} setting`),
].join("|"));
const COMMAND = /\b(pulumi( [a-z{]+)+|fdeploy [a-z]|npm (run|install|ci)|npx \w|ssh-keyscan|ssh-keygen|systemctl [\w{]|journalctl|apt-get|pip install|certbot|nginx -t|ssh-add|bash [\w./-]+)/;
const FILE = new RegExp([
  "(^|[\\s'\"(`=])(~|\\.{1,2})?/[\\w.*<>{}-]",                    // /etc/fdeploy/…
  "\\b(?!and/or)[\\w.*<>{}-]+/",                                   // shared/db, releases/<id>, shared/
  "\\b[\\w*{}.-]+\\.(py|txt|sh|sql|db|sqlite3?|json|conf|pem|ya?ml|toml|cfg|service|timer|ts|env|lock|html|log|flaskenv)\\b",
  "\\b(directory|folder|file|database|upload|link|path) \\{",                // the database {db}
  "\\{[^{}]*(path|Path|file|File|dir|Dir|db\\b|folder|root|Root|dest|bundle|unit|conf)[^{}]*\\}",
].join("|"));

// Internal assertions: the program's own parameters (validated before they are sent: the config schema, fdeploy's
// options) or the agent's own output, refused on the server only if the program is broken; a user cannot cause them.
const INTERNAL = [
  /^bad (release id|slot|app user|app name|stack name|package name|runtime|job name|certificate name|shared (paths|file)|parameter name|schema version|migrations upload|replica kind|line count|command \(CMD|maintenance mode|lock action|INSTALL_SECONDS|timeout or keep|canary parameters|canary-gate parameters|health check parameters|health path|host name)\b|^bad \{what\} /,
  /^(could not read the|no|the) parameters on stdin/, /^[A-Z]+( and [A-Z]+)? must be|^[A-Z]+ and [A-Z]+: expected/,
  /^unsafe word in a remote command line/, /^\{what\} at position/,     // app-module.ts: caught, becomes an appModule problem
  /^unknown (shared step|migration mode|strategy)/, /^\{user\} is not a user of app/, /^the agent chose no user/, /^\{key\}: expected one line of text/,
];
/** A message passed on from elsewhere ({e}, "$@"): checked where it is written. */
const PASSED_ON = /^(\{(e|err|exc|@)\}|\$@|)$|^\$\(result_field error/;

/** Why M breaks the rule, if it does (internal assertions and passed-on messages aside). */
function ruleBroken(m: Message): string | undefined {
  const first = m.text.split("\n")[0];
  if (first.length >= 160) return `first line is ${first.length} characters (at most 159)`;
  if (!SETTING.test(first) && !COMMAND.test(first) && !FILE.test(first)) return "first line names no setting, command or file";
  return undefined;
}

/** An internal assertion or a passed-on message that would break the rule. */
export function isExempt(m: Message): boolean {
  return ruleBroken(m) !== undefined && (INTERNAL.some((re) => re.test(m.text)) || PASSED_ON.test(m.text.split("\n")[0]));
}

export function breaks(m: Message): string | undefined {
  return isExempt(m) ? undefined : ruleBroken(m);
}

if (typeof describe === "function") describe("message rule (issue 34)", () => {
  const all = { program: programMessages(), agent: agentMessages() };   // no bash runs on servers (issue #24)
  for (const [where, msgs] of Object.entries(all)) {
    it(`${where}: every error message's first line is under 160 characters and names a setting, command or file`, () => {
      console.log(`      ${msgs.length} ${where} messages checked (${msgs.filter(isExempt).length} exempt: internal assertions or passed on)`);
      assert.ok(msgs.length > 10, `found only ${msgs.length} ${where} messages: the scan is broken`);
      const bad = msgs.flatMap((m) => { const why = breaks(m); return why ? [`${m.file}:${m.line}: ${why}: ${m.text.split("\n")[0]}`] : []; });
      assert.deepStrictEqual(bad, []);
    });
  }
});
