// npm run backup -- verify|restore|status --stack <stack> … : an alias of `fdeploy backup`
// (cli/commands/backup.ts), kept for the docs and tests that call it.
import { main } from "../cli/main";

main([process.argv[0], "fdeploy", "backup", ...process.argv.slice(2)]).then((code) => process.exit(code));
