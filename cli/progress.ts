import { SingleBar } from 'cli-progress';
import type { Logger } from '../shared/runtime/logger.js';
import type { TrainingProgress } from '../coordinator/training-run.js';

/**
 * Reports training progress: a progress bar with step/total, losses, samples/s and ETA on a terminal,
 * otherwise one log line every `logEverySteps` steps and at the end.
 */
export function progressReporter(
  log: Logger,
  logEverySteps = 10,
): { update(p: TrainingProgress): void; stop(): void } {
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      format:
        'step {value}/{total} [{bar}] lossD {lossD} lossG {lossG} | {rate} samples/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
    });
    let started = false;
    return {
      update(p) {
        const payload = {
          lossD: p.lossD.toFixed(3),
          lossG: p.lossG.toFixed(3),
          rate: p.samplesPerSec.toFixed(1),
        };
        if (!started) {
          bar.start(p.totalSteps, p.step, payload);
          started = true;
        } else {
          bar.update(p.step, payload);
        }
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  return {
    update(p) {
      if (p.step % logEverySteps !== 0 && p.step !== p.totalSteps) return;
      log.info(
        {
          step: p.step,
          totalSteps: p.totalSteps,
          lossD: p.lossD,
          lossG: p.lossG,
          samplesPerSec: p.samplesPerSec,
          etaSec: Math.round(p.etaSec),
        },
        'progress',
      );
    },
    stop() {},
  };
}
