// Runs the recontext-ffs command line from source (tests spawn it with `node --import tsx`).
import { main } from '../src/cli.js';

process.exitCode = await main(process.argv.slice(2));
