/**
 * An error caused by invalid user input (flags, job files, addresses). The CLI exits with code 2 on it,
 * like other Unix tools do for usage errors.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit code for usage errors. */
export const USAGE_EXIT_CODE = 2;
