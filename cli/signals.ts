import type { Logger } from '../shared/runtime/logger.js';

/**
 * Turns the first SIGINT or SIGTERM into an abort of the returned controller, so a run can stop at the
 * next step boundary and write a checkpoint. A second signal exits at once with 130.
 */
export function abortOnSignals(log: Logger): AbortController {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log.warn({ signal }, 'second signal, exiting without waiting for the step');
      process.exit(130);
    }
    log.info({ signal }, 'signal received, stopping after the current step');
    controller.abort(`received ${signal}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller;
}
