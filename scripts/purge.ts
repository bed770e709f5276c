// npm run purge -- --stack <stack> … : an alias of `fdeploy purge` (cli/commands/purge.ts), kept for the
// docs, tests and benchmark that call it.
import { main } from "../cli/main";

main([process.argv[0], "fdeploy", "purge", ...process.argv.slice(2)]).then((code) => process.exit(code));
