/** Default deadline of control calls (Register, StartJob, EndJob, health checks), in milliseconds. */
export const CONTROL_DEADLINE_MS = 10_000;

/** Default deadline of one collective operation and of one RunStep call, in milliseconds. */
export const STEP_DEADLINE_MS = 120_000;

/**
 * Extra time a reducing client waits beyond the operation's deadline, in milliseconds. The coordinator's
 * timer fires first and names the silent ranks, so the client's own deadline only catches a lost coordinator.
 */
export const REDUCE_CLIENT_GRACE_MS = 2_000;

/** Returns the absolute deadline `ms` milliseconds from now, as grpc-js expects it. */
export function deadlineAfter(ms: number): Date {
  return new Date(Date.now() + ms);
}
