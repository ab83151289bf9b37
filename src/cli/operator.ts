// `recontext operator`: the controller process. The runtime lands with the operator-core issue;
// until then the command says so and fails, rather than pretending to reconcile anything.
import { Command } from 'commander';

export function operatorCommand(): Command {
  return new Command('operator')
    .description('Run the recontext operator (not available yet: lands with the operator-core work, issue #5).')
    .action(() => {
      process.stderr.write('recontext operator: not implemented yet — the controller runtime lands with issue #5. Nothing was started.\n');
      process.exitCode = 1;
    });
}
