import type { Redis } from 'ioredis';
import { cancelChannel, cancelKey } from './queue-names.js';

/** A cancel request as published on the cancel channel. */
export interface CancelRequest {
  jobId: string;
  reason: string;
}

// A cancel marker outlives any retry delay of the job it marks.
const CANCEL_MARKER_TTL_SEC = 7 * 24 * 3600;

/**
 * Marks `jobId` as cancelled and announces it on the cancel channel. Returns how many subscribers (running
 * coordinators) received the message; the marker reaches coordinators that take the job later.
 */
export async function requestCancel(client: Redis, prefix: string, request: CancelRequest): Promise<number> {
  await client.set(cancelKey(prefix, request.jobId), request.reason, 'EX', CANCEL_MARKER_TTL_SEC);
  return client.publish(cancelChannel(prefix), JSON.stringify(request));
}

/** Returns the reason of a cancel request for `jobId`, or undefined when there is none. */
export async function cancelReasonOf(
  client: Redis,
  prefix: string,
  jobId: string,
): Promise<string | undefined> {
  return (await client.get(cancelKey(prefix, jobId))) ?? undefined;
}

/** Parses a message of the cancel channel; returns undefined for anything that is not a cancel request. */
export function parseCancelRequest(message: string): CancelRequest | undefined {
  try {
    const value = JSON.parse(message) as Partial<CancelRequest>;
    if (typeof value.jobId !== 'string' || value.jobId === '') return undefined;
    return {
      jobId: value.jobId,
      reason: typeof value.reason === 'string' ? value.reason : 'no reason given',
    };
  } catch {
    return undefined;
  }
}
