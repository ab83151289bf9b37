// Runs the recontext CLI from source, for tests that need it as a real process:
//   node --import tsx test/support/run-cli.ts operator --kubeconfig …
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv);
