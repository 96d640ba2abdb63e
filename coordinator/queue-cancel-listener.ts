import type { Redis } from 'ioredis';
import { cancelReasonOf, parseCancelRequest, type CancelRequest } from '../shared/queue/cancel-requests.js';
import { cancelChannel } from '../shared/queue/queue-names.js';
import type { Logger } from '../shared/runtime/logger.js';

// How often the active job's cancel marker is read, in case its pub/sub message was lost (a message sent
// while the subscriber reconnects after a Redis restart is never delivered).
const MARKER_POLL_INTERVAL_MS = 5_000;

/**
 * Delivers `cbn-train cancel` requests to the coordinator: at once through the cancel channel, and by
 * polling the cancel marker of the active job as a fallback.
 */
export class CancelListener {
  private activeJobId: string | undefined;
  private polling = false;
  private readonly poll: NodeJS.Timeout;

  private constructor(
    private readonly client: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
    private readonly onCancel: (request: CancelRequest) => void,
    private readonly log: Logger,
  ) {
    this.poll = setInterval(() => void this.pollActiveJob(), MARKER_POLL_INTERVAL_MS);
    this.poll.unref();
  }

  /** Subscribes to the cancel channel on a duplicate of `client` (a subscribed connection can do nothing else). */
  static async start(
    client: Redis,
    prefix: string,
    onCancel: (request: CancelRequest) => void,
    log: Logger,
  ): Promise<CancelListener> {
    const subscriber = client.duplicate();
    subscriber.on('error', (error: Error) => log.debug({ err: error }, 'cancel subscriber connection error'));
    const listener = new CancelListener(client, subscriber, prefix, onCancel, log);
    subscriber.on('message', (_channel: string, message: string) => listener.receive(message));
    await subscriber.subscribe(cancelChannel(prefix));
    return listener;
  }

  /** Sets the job whose marker the poll reads (undefined between jobs). */
  watch(jobId: string | undefined): void {
    this.activeJobId = jobId;
  }

  /** Returns the reason of a cancel request for `jobId`, or undefined. */
  reasonOf(jobId: string): Promise<string | undefined> {
    return cancelReasonOf(this.client, this.prefix, jobId);
  }

  async close(): Promise<void> {
    clearInterval(this.poll);
    this.subscriber.disconnect();
  }

  private receive(message: string): void {
    const request = parseCancelRequest(message);
    if (request === undefined) {
      this.log.warn({ message: message.slice(0, 200) }, 'ignored a malformed message on the cancel channel');
      return;
    }
    this.onCancel(request);
  }

  private async pollActiveJob(): Promise<void> {
    const jobId = this.activeJobId;
    if (jobId === undefined || this.polling) return;
    this.polling = true;
    try {
      const reason = await this.reasonOf(jobId);
      if (reason !== undefined) this.onCancel({ jobId, reason });
    } catch (error) {
      this.log.debug(
        { err: error, jobId },
        'could not read the cancel marker; trying again at the next poll',
      );
    } finally {
      this.polling = false;
    }
  }
}
