import { endianness } from 'node:os';
import type { WireDType } from './messages.js';

/**
 * Payload bytes per message. Chunks of 1–4 MiB keep every message under gRPC's 4 MiB default receive limit
 * and stream faster than one large unary message, which grpc-js copies several times.
 */
export const CHUNK_BYTES = 1024 * 1024;

export type FloatArray = Float32Array | Float64Array;

// Typed arrays use the host's byte order and the wire is little-endian. The codecs copy bytes unchanged, so
// they refuse a big-endian host (s390x) instead of swapping bytes.
if (endianness() !== 'LE') {
  throw new Error(`cbn-train's wire codecs need a little-endian host, but this one is ${endianness()}`);
}

/** Returns the wire enum name of a typed array's element type. */
export function wireDTypeOf(values: FloatArray): WireDType {
  return values instanceof Float64Array ? 'DTYPE_FLOAT64' : 'DTYPE_FLOAT32';
}

/** Returns the element size in bytes of a wire dtype, or throws on an unspecified one. */
export function bytesPerElement(dtype: WireDType): number {
  if (dtype === 'DTYPE_FLOAT32') return 4;
  if (dtype === 'DTYPE_FLOAT64') return 8;
  throw new Error(`invalid dtype ${dtype}, expected DTYPE_FLOAT32 or DTYPE_FLOAT64`);
}

/** Returns a Buffer that shares the memory of `view`, without copying. */
export function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** Yields consecutive slices of `bytes` of at most `chunkBytes` each. An empty input yields one empty slice. */
export function* chunksOf(bytes: Buffer, chunkBytes = CHUNK_BYTES): Generator<Buffer> {
  if (bytes.length === 0) {
    yield bytes;
    return;
  }
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
    yield bytes.subarray(offset, Math.min(offset + chunkBytes, bytes.length));
  }
}

/** Creates a zeroed typed array of `length` elements of a wire dtype. */
export function allocate(dtype: WireDType, length: number): FloatArray {
  bytesPerElement(dtype);
  return dtype === 'DTYPE_FLOAT64' ? new Float64Array(length) : new Float32Array(length);
}

/**
 * Collects raw chunks into a typed array of known length. Chunks may split elements anywhere, and `finish`
 * throws when the byte count does not match the announced length.
 */
export class ChunkAssembler {
  readonly values: FloatArray;
  private readonly target: Uint8Array;
  private received = 0;

  constructor(
    readonly dtype: WireDType,
    readonly length: number,
  ) {
    this.values = allocate(dtype, length);
    this.target = new Uint8Array(this.values.buffer);
  }

  /** Appends one chunk, throwing when it would overflow the announced length. */
  push(chunk: Uint8Array): void {
    if (this.received + chunk.length > this.target.length) {
      throw new Error(
        `payload overflows its announced length: ${this.received + chunk.length} bytes, expected ${this.target.length}`,
      );
    }
    this.target.set(chunk, this.received);
    this.received += chunk.length;
  }

  /** Returns the assembled values, throwing when bytes are missing. */
  finish(): FloatArray {
    if (this.received !== this.target.length) {
      throw new Error(`payload truncated: ${this.received} bytes, expected ${this.target.length}`);
    }
    return this.values;
  }
}
