import { Command, CommanderError } from 'commander';
import { USAGE_EXIT_CODE, UsageError } from '../shared/runtime/errors.js';

/**
 * The `cbn-train` command line. Each subcommand lives in `cli/commands/<name>.ts` and exports a
 * `register(program)` function that adds it.
 */
const program = new Command('cbn-train')
  .description('Distributed training of conditional-batch-norm ResBlock models with TensorFlow.js')
  .showHelpAfterError()
  .exitOverride();

const commandModules: Promise<{ register(program: Command): void }>[] = [
  // Each entry registers one subcommand.
  import('./commands/local.js'),
  import('./commands/coordinator.js'),
  import('./commands/worker.js'),
  import('./commands/sample.js'),
  import('./commands/bench.js'),
  import('./commands/submit.js'),
  import('./commands/status.js'),
  import('./commands/watch.js'),
  import('./commands/cancel.js'),
];

for (const module of await Promise.all(commandModules)) module.register(program);

// A child of `cbn-train local` stops like on SIGTERM when its parent goes away (its stdin pipe closes).
if (process.env.CBN_EXIT_WITH_PARENT === '1') {
  process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
  process.stdin.resume();
  process.stdin.unref?.();
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander already printed the message; help and version exit 0.
    process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT_CODE);
  }
  if (error instanceof UsageError) {
    process.stderr.write(`cbn-train: ${error.message}\n`);
    process.exit(USAGE_EXIT_CODE);
  }
  process.stderr.write(
    `cbn-train: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
}
