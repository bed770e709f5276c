// node -r ./scripts/ts-register.js FILE.ts — how `pulumi up` (Pulumi.yaml's nodeargs), fdeploy and
// `npm run rollback|purge|backup` run TypeScript without ts-node: scripts/ts-transpile-cache.js
// (register), TypeScript loaded only for a file not transpiled yet.
"use strict";
require("./ts-transpile-cache").register();
