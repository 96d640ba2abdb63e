import { UsageError } from '../runtime/errors.js';

/**
 * A data file that is missing, truncated or not in the expected format. It extends UsageError because the
 * fix is on the user's side (point `dataDir` at intact files, or download them again), so the CLI exits
 * with the usage exit code.
 */
export class DataFormatError extends UsageError {
  override name = 'DataFormatError';
}
