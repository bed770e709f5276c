// A stack's configuration, one concern per file in config/: the typed schema (schema.ts), parsing raw
// config into it with every problem named by key (parse.ts, errors.ts), checks across keys (checks.ts;
// X.509 in x509.ts), defaults by project and stack (defaults.ts), the machine-local .env (dotenv.ts),
// the stack file's plaintext guard (stack-file.ts), the running program's raw config (raw.ts) and the
// per-app release pin (pin.ts). README "Configuration" documents every key.
export * from "./config/schema";
export * from "./config/errors";
export * from "./config/parse";
export * from "./config/checks";
export * from "./config/x509";
export * from "./config/defaults";
export * from "./config/dotenv";
export * from "./config/stack-file";
export * from "./config/raw";
export * from "./config/pin";
export * from "./config/database";
export * from "./config/pg-backup";
