import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `chunks` to a new file and flushes it to disk: open, write, fsync, close. The file is created or
 * truncated.
 */
export async function writeFileSynced(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const handle = await open(path, 'w');
  try {
    for (const chunk of chunks) {
      // A write may store fewer bytes than requested, so loop until the chunk is written.
      let written = 0;
      while (written < chunk.byteLength) {
        const result = await handle.write(chunk, written, chunk.byteLength - written);
        written += result.bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a directory's entries (creations, renames) to disk. */
export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with a file containing `chunks`, so readers see either the old or the new content. The
 * data goes to a temp file in the same directory, because a rename is atomic only within one file system.
 * The temp file is flushed with fsync and renamed over `path`, and the directory is flushed last so the
 * rename survives a crash.
 */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const directory = dirname(path);
  const tempPath = join(directory, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);

  try {
    await writeFileSynced(tempPath, chunks);
    await rename(tempPath, path);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
  await fsyncDirectory(directory);
}
