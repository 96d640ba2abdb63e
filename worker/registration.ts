import * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { CONTROL_DEADLINE_MS, deadlineAfter } from '../shared/rpc/deadline.js';
import { isServiceError, messageOf, RegistrationRejectedError, statusName } from '../shared/rpc/errors.js';
import type { RegisterRequest, RegisterResponse } from '../shared/rpc/messages.js';
import { CHANNEL_OPTIONS, loadProtos } from '../shared/rpc/proto.js';
import { PROTOCOL_VERSION } from '../shared/rpc/version.js';

export interface RegistrationOptions {
  /** HOST:PORT of the coordinator. */
  coordinatorAddress: string;
  workerId: string;
  /** HOST:PORT at which the coordinator reaches this worker's service, for example a container hostname. */
  advertisedAddress: string;
  /** TensorFlow.js backend this worker runs on. */
  backend: string;
  /** Hash of this worker's model definition. The coordinator rejects a different one. */
  modelHash: string;
  /** Protocol version to present (default PROTOCOL_VERSION). Tests override it. */
  protocolVersion?: number;
  /** Deadline of one Register attempt, in milliseconds (default 10 000). */
  attemptDeadlineMs?: number;
  /** Wait before the first retry, in milliseconds (default 500). It doubles up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  /** Maximum wait between retries, in milliseconds (default 10 000). */
  maxBackoffMs?: number;
  /** Time after which registration gives up, in milliseconds (default 300 000). */
  timeoutMs?: number;
  /** A heartbeat re-registration: an accepted registration is logged at debug level instead of info. */
  heartbeat?: boolean;
  logger?: Logger;
}

/** The coordinator's response to an accepted registration. */
export interface Registration {
  /** Set when the coordinator had already assigned this worker a rank. Otherwise StartJob brings it. */
  rank?: number;
  message: string;
}

// Retries logged at info level before they become warnings.
const EXPECTED_EARLY_RETRIES = 3;

// Status codes that mean "the coordinator is not reachable yet", worth retrying. Any other failure (for
// example UNIMPLEMENTED from a server that is not a cbn-train coordinator) ends registration at once.
const RETRYABLE_CODES = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
]);

/**
 * Registers this worker with the coordinator, retrying with exponential backoff while the coordinator is
 * unreachable, and logging every retry. Throws RegistrationRejectedError with the coordinator's message
 * when it rejects the worker for another protocol version or model hash, and the worker should then exit
 * non-zero with that message. Throws a plain Error when no attempt succeeds within `timeoutMs`.
 */
export async function registerWithCoordinator(options: RegistrationOptions): Promise<Registration> {
  const log = options.logger ?? createLogger('worker', { workerId: options.workerId });
  const timeoutMs = options.timeoutMs ?? 300_000;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const request: RegisterRequest = {
    workerId: options.workerId,
    address: options.advertisedAddress,
    backend: options.backend,
    protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
    modelHash: options.modelHash,
  };
  const { CoordinatorClient } = loadProtos();
  const client = new CoordinatorClient(
    options.coordinatorAddress,
    grpc.credentials.createInsecure(),
    CHANNEL_OPTIONS,
  );
  const started = Date.now();
  let backoffMs = options.initialBackoffMs ?? 500;

  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await callRegister(
          client,
          request,
          options.attemptDeadlineMs ?? CONTROL_DEADLINE_MS,
        );
        return accepted(response, options, log);
      } catch (error) {
        if (error instanceof RegistrationRejectedError) throw error;
        if (!isRetryable(error)) {
          log.error({ coordinator: options.coordinatorAddress, attempt, err: error }, 'registration failed');
          throw new Error(
            `registration with the coordinator at ${options.coordinatorAddress} failed: ${describeFailure(error)}`,
            {
              cause: error,
            },
          );
        }

        const elapsedMs = Date.now() - started;
        if (elapsedMs + backoffMs > timeoutMs) {
          log.error(
            { coordinator: options.coordinatorAddress, attempt, elapsedMs, err: error },
            'registration timed out',
          );
          throw new Error(
            `registration with the coordinator at ${options.coordinatorAddress} timed out after ${elapsedMs} ms ` +
              `and ${attempt} attempts: ${describeFailure(error)}`,
            { cause: error },
          );
        }
        // A worker often starts before its coordinator listens, so the first retries are expected.
        const level = attempt <= EXPECTED_EARLY_RETRIES ? 'info' : 'warn';
        log[level](
          {
            coordinator: options.coordinatorAddress,
            attempt,
            retryInMs: backoffMs,
            error: describeFailure(error),
          },
          'registration failed, retrying',
        );
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
      }
    }
  } finally {
    client.close();
  }
}

function accepted(response: RegisterResponse, options: RegistrationOptions, log: Logger): Registration {
  if (!response.accepted) {
    log.error({ coordinator: options.coordinatorAddress, reason: response.message }, 'registration rejected');
    throw new RegistrationRejectedError(
      `the coordinator at ${options.coordinatorAddress} rejected this worker: ${response.message}`,
    );
  }

  const fields = {
    coordinator: options.coordinatorAddress,
    rank: response.rank,
    address: options.advertisedAddress,
  };
  if (options.heartbeat) log.debug(fields, 'heartbeat accepted');
  else log.info(fields, 'registered');
  const registration: Registration = { message: response.message };
  if (response.rank !== undefined) registration.rank = response.rank;
  return registration;
}

function callRegister(
  client: grpc.Client,
  request: RegisterRequest,
  deadlineMs: number,
): Promise<RegisterResponse> {
  const register = (client as unknown as { Register: RegisterMethod }).Register;
  return new Promise((resolve, reject) => {
    register.call(client, request, { deadline: deadlineAfter(deadlineMs) }, (error, response) => {
      if (error !== null) reject(error);
      else resolve(response!);
    });
  });
}

type RegisterMethod = (
  request: RegisterRequest,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: RegisterResponse) => void,
) => grpc.ClientUnaryCall;

function isRetryable(error: unknown): boolean {
  return isServiceError(error) && RETRYABLE_CODES.has(error.code);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeFailure(error: unknown): string {
  if (isServiceError(error)) return `${statusName(error.code)}: ${error.details}`;
  return messageOf(error);
}
