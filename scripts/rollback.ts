// npm run rollback -- --stack <stack> … : an alias of `fdeploy rollback` (cli/commands/rollback.ts), kept for the
// docs, tests and benchmark that call it.
import { main } from "../cli/main";

main([process.argv[0], "fdeploy", "rollback", ...process.argv.slice(2)]).then((code) => process.exit(code));
