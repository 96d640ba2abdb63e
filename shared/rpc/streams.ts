import type { Writable } from 'node:stream';

/**
 * Writes one message to a gRPC stream and waits for the stream to drain when its buffer is full, so that a
 * 64 MiB payload is not queued in memory all at once. Rejects when the stream closes or fails first.
 */
export function writeMessage(stream: Writable, message: unknown): Promise<void> {
  // A closed stream emits no more 'drain' or 'close' events, so waiting on it would never settle.
  if (stream.destroyed || stream.writableEnded) return Promise.reject(new Error('stream already closed'));
  if (stream.write(message)) return Promise.resolve();

  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('stream closed before its buffered messages were sent'));
    };
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}
