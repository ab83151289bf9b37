// The `recontext` command line. Each subcommand lives in its own module and exports a function
// that returns a commander Command; this file only assembles them and maps errors to exit codes.
import { Command, CommanderError } from 'commander';
import { isoCommand } from './iso.js';
import { operatorCommand } from './operator.js';
import { policyCommand } from './policy.js';
import { renderCommand } from './render.js';
import { validateCommand } from './validate.js';

export const VERSION = '0.1.0';

export function program(): Command {
  const root = new Command('recontext')
    .description('Keeps the context of running VMs live: layered context images, re-rendered and hot-swapped when a VM migrates.')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  root.addCommand(validateCommand());
  root.addCommand(renderCommand());
  root.addCommand(operatorCommand());
  root.addCommand(isoCommand());
  root.addCommand(policyCommand());
  // --help, usage errors: return through main() instead of process.exit(), on every subcommand too.
  for (const command of root.commands) command.exitOverride().showHelpAfterError();
  return root;
}

/** Runs the CLI and returns the process exit code (0 ok, 1 failure/invalid input, 2 usage error). */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await program().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error: unknown) {
    if (error instanceof CommanderError) {
      // --help and --version end with exit code 0 through the same path.
      return error.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`recontext: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
