import { status, type ServiceError, type StatusObject } from '@grpc/grpc-js';

/** The parties of a call, named in every error that crosses gRPC. All fields are optional. */
export interface CallContext {
  rank?: number;
  workerId?: string;
  address?: string;
  jobId?: string;
  step?: number;
  opId?: string;
}

/** Formats a context as `rank 1 (worker w1 at 127.0.0.1:7001), job j1, step 12, operation step 12/D/grad`. */
export function describeContext(context: CallContext): string {
  const parts: string[] = [];
  const who = [
    context.workerId === undefined ? undefined : `worker ${context.workerId}`,
    context.address === undefined ? undefined : `at ${context.address}`,
  ]
    .filter((part) => part !== undefined)
    .join(' ');
  if (context.rank !== undefined)
    parts.push(who === '' ? `rank ${context.rank}` : `rank ${context.rank} (${who})`);
  else if (who !== '') parts.push(who);
  if (context.jobId !== undefined) parts.push(`job ${context.jobId}`);
  if (context.step !== undefined) parts.push(`step ${context.step}`);
  if (context.opId !== undefined) parts.push(`operation ${JSON.stringify(context.opId)}`);
  return parts.join(', ');
}

/** Returns the name of a gRPC status code, such as `DEADLINE_EXCEEDED`. */
export function statusName(code: number): string {
  return status[code] ?? `status ${code}`;
}

/** A failed gRPC call, with the parties and the status code. */
export class RpcError extends Error {
  override name = 'RpcError';

  constructor(
    message: string,
    readonly code: number,
    readonly context: CallContext,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Wraps an error of a gRPC call into an RpcError whose message names the call, the parties and the status:
 * `RunStep failed for rank 1 (worker w1 at 10.0.0.5:7001), step 12: DEADLINE_EXCEEDED: Deadline exceeded`.
 */
export function wrapCallError(call: string, error: unknown, context: CallContext): RpcError {
  const code = isServiceError(error) ? error.code : status.UNKNOWN;
  const details = isServiceError(error) ? error.details : messageOf(error);
  const message = `${call} failed for ${describeContext(context)}: ${statusName(code)}: ${details}`;
  return new RpcError(message, code, context, { cause: error });
}

/** Returns whether `error` is a grpc-js ServiceError (an Error with a numeric `code` and `details`). */
export function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error && typeof (error as Partial<ServiceError>).code === 'number' && 'details' in error
  );
}

/** Builds the status object a server passes to a callback or `emit('error')` to fail a call. */
export function serviceError(code: status, details: string): Partial<StatusObject> & Error {
  return Object.assign(new Error(details), { code, details });
}

/** Returns the message of any thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Error of a registration the coordinator rejected. The message contains the coordinator's reason. */
export class RegistrationRejectedError extends Error {
  override name = 'RegistrationRejectedError';
}

/** Error of a step that failed on a worker. The message names the rank, the worker address and the step. */
export class WorkerStepError extends Error {
  override name = 'WorkerStepError';

  constructor(
    message: string,
    readonly context: CallContext,
  ) {
    super(message);
  }
}
