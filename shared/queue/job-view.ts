import { isQueuedJobProgress } from './job-types.js';
import type { TrainingJob } from './job-queue.js';

/** One job as `status` shows it. */
export interface JobSummary {
  id: string;
  name: string;
  state: string;
  progress: string;
  age: string;
}

/** Formats progress as `12/40 (30%)`, or `-` before the first step. */
export function formatProgress(progress: unknown): string {
  if (!isQueuedJobProgress(progress)) return '-';
  const percent = Math.floor((100 * progress.step) / progress.totalSteps);
  return `${progress.step}/${progress.totalSteps} (${percent}%)`;
}

/** Formats a duration in its largest whole unit: `42s`, `5m`, `3h`, `2d`. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** Summarizes a job for the table; the age counts from submission. */
export function summarizeJob(job: TrainingJob, state: string, nowMs = Date.now()): JobSummary {
  return {
    id: job.id ?? '?',
    name: job.name,
    state,
    progress: formatProgress(job.progress),
    age: formatAge(nowMs - job.timestamp),
  };
}

/** Formats summaries as a left-aligned table with a header row. */
export function formatJobTable(jobs: JobSummary[]): string {
  const header: JobSummary = { id: 'ID', name: 'NAME', state: 'STATE', progress: 'PROGRESS', age: 'AGE' };
  const rows = [header, ...jobs];
  const keys = ['id', 'name', 'state', 'progress', 'age'] as const;
  const widths = keys.map((key) => Math.max(...rows.map((row) => row[key].length)));
  return (
    rows
      .map((row) =>
        keys
          .map((key, i) => row[key].padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** Formats one job in detail: state, attempts, times, progress, config and result or failure reason. */
export function formatJobDetails(job: TrainingJob, state: string): string {
  const lines: [string, string][] = [
    ['id', job.id ?? '?'],
    ['name', job.name],
    ['state', state],
    ['progress', formatProgress(job.progress)],
    // BullMQ counts an attempt as made when it completed or failed; a crashed or shut down one was only started.
    [
      'attempts',
      `${job.attemptsStarted} started, ${job.attemptsMade} made, ${job.opts.attempts ?? 1} allowed`,
    ],
    ['submitted', new Date(job.timestamp).toISOString()],
  ];
  if (job.processedOn) lines.push(['started', new Date(job.processedOn).toISOString()]);
  if (job.finishedOn) lines.push(['finished', new Date(job.finishedOn).toISOString()]);
  lines.push(['out', job.data?.config?.out ?? '?']);
  if (job.failedReason) lines.push(['reason', job.failedReason]);
  if (job.returnvalue) lines.push(['result', JSON.stringify(job.returnvalue)]);
  lines.push(['config', JSON.stringify(job.data?.config)]);
  const width = Math.max(...lines.map(([label]) => label.length));
  return lines.map(([label, value]) => `${`${label}:`.padEnd(width + 2)}${value}`).join('\n') + '\n';
}
