import { allocate, bytesOf, bytesPerElement, CHUNK_BYTES, chunksOf, wireDTypeOf } from './codec.js';
import type { TensorChunk } from './messages.js';
import type { NamedTensor } from './types.js';

/**
 * Yields the chunks of a tensor stream (GetState, PutState). Each tensor is sent as consecutive chunks of at
 * most `chunkBytes` raw little-endian bytes. Every chunk repeats the name, shape and dtype and carries its
 * byte offset, so the receiver can check order and completeness.
 */
export function* encodeTensors(
  tensors: readonly NamedTensor[],
  chunkBytes = CHUNK_BYTES,
): Generator<TensorChunk> {
  for (const tensor of tensors) {
    checkShape(tensor.name, tensor.shape, tensor.values.length);
    const dtype = wireDTypeOf(tensor.values);
    let offset = 0;
    for (const data of chunksOf(bytesOf(tensor.values), chunkBytes)) {
      yield { name: tensor.name, shape: tensor.shape, dtype, offset, data };
      offset += data.length;
    }
  }
}

/** Reassembles named tensors from the chunks of `encodeTensors`, checking offsets, sizes and duplicate names. */
export class TensorStreamDecoder {
  private readonly tensors: NamedTensor[] = [];
  private readonly names = new Set<string>();
  private current: { tensor: NamedTensor; bytes: Uint8Array; received: number } | undefined;

  /** Adds one chunk. A chunk at offset 0 or with a new name finishes the previous tensor. */
  push(chunk: TensorChunk): void {
    const current = this.current;
    if (current === undefined || chunk.name !== current.tensor.name || chunk.offset === 0) this.begin(chunk);
    const tensor = this.current!;
    if (chunk.offset !== tensor.received) {
      throw new Error(
        `tensor ${JSON.stringify(chunk.name)}: chunk at byte ${chunk.offset}, expected ${tensor.received}`,
      );
    }
    if (tensor.received + chunk.data.length > tensor.bytes.length) {
      throw new Error(
        `tensor ${JSON.stringify(chunk.name)}: received more bytes than its shape [${chunk.shape.join(',')}] contains`,
      );
    }
    tensor.bytes.set(chunk.data, tensor.received);
    tensor.received += chunk.data.length;
  }

  /** Returns the tensors in stream order, throwing when the last one is incomplete. */
  finish(): NamedTensor[] {
    this.closeCurrent();
    return this.tensors;
  }

  private begin(chunk: TensorChunk): void {
    this.closeCurrent();
    if (this.names.has(chunk.name)) throw new Error(`tensor ${JSON.stringify(chunk.name)} sent twice`);

    const length = chunk.shape.reduce((product, size) => product * size, 1);
    bytesPerElement(chunk.dtype);
    const values = allocate(chunk.dtype, length);
    const tensor: NamedTensor = { name: chunk.name, shape: [...chunk.shape], values };
    this.names.add(chunk.name);
    this.current = { tensor, bytes: new Uint8Array(values.buffer), received: 0 };
  }

  private closeCurrent(): void {
    const current = this.current;
    if (current === undefined) return;
    if (current.received !== current.bytes.length) {
      throw new Error(
        `tensor ${JSON.stringify(current.tensor.name)} truncated: ${current.received} bytes, expected ${current.bytes.length}`,
      );
    }
    this.tensors.push(current.tensor);
    this.current = undefined;
  }
}

function checkShape(name: string, shape: readonly number[], length: number): void {
  const expected = shape.reduce((product, size) => product * size, 1);
  if (shape.some((size) => !Number.isInteger(size) || size < 0) || expected !== length) {
    throw new Error(`tensor ${JSON.stringify(name)} has shape [${shape.join(',')}] but ${length} values`);
  }
}
