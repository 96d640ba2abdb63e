import type { RunStepRequest as WireRunStepRequest, WireShard, WireStepResult } from './messages.js';
import type { RunStepRequest, Shard, StepResult } from './types.js';

/** Converts a step request to its wire form. */
export function runStepToWire(request: RunStepRequest): WireRunStepRequest {
  const { shard } = request;
  return {
    jobId: request.jobId,
    step: request.step,
    phases: request.phases,
    globalBatch: request.globalBatch,
    shard: {
      images: Buffer.from(shard.images.buffer, shard.images.byteOffset, shard.images.byteLength),
      labels: Buffer.from(shard.labels.buffer, shard.labels.byteOffset, shard.labels.byteLength),
      globalIndices: Array.from(shard.globalIndices),
      count: shard.count,
      height: shard.height,
      width: shard.width,
      channels: shard.channels,
    },
  };
}

/** Converts a received step request to the handler's form, throwing when the shard's sizes disagree. */
export function runStepFromWire(request: WireRunStepRequest): RunStepRequest {
  const wire: WireShard = request.shard ?? emptyWireShard();
  const shard: Shard = {
    images: new Uint8Array(wire.images.buffer, wire.images.byteOffset, wire.images.byteLength),
    labels: new Uint8Array(wire.labels.buffer, wire.labels.byteOffset, wire.labels.byteLength),
    globalIndices: Uint32Array.from(wire.globalIndices),
    count: wire.count,
    height: wire.height,
    width: wire.width,
    channels: wire.channels,
  };
  checkShard(shard);
  return {
    jobId: request.jobId,
    step: request.step,
    phases: request.phases,
    globalBatch: request.globalBatch,
    shard,
  };
}

/** Converts a handler's result to its wire form. */
export function stepResultToWire(result: StepResult): WireStepResult {
  const wire: WireStepResult = { losses: result.losses, timingsMs: result.timingsMs, error: '' };
  if (result.paramChecksum !== undefined) wire.paramChecksum = result.paramChecksum;
  return wire;
}

/** Converts a received result to the plain form, leaving out the error field that the client turns into a throw. */
export function stepResultFromWire(wire: WireStepResult): StepResult {
  const result: StepResult = { losses: { ...wire.losses }, timingsMs: { ...wire.timingsMs } };
  if (wire.paramChecksum !== undefined) result.paramChecksum = wire.paramChecksum;
  return result;
}

function checkShard(shard: Shard): void {
  const pixels = shard.count * shard.height * shard.width * shard.channels;
  if (shard.images.length !== pixels) {
    throw new Error(
      `shard images have ${shard.images.length} bytes, expected count×height×width×channels = ` +
        `${shard.count}×${shard.height}×${shard.width}×${shard.channels} = ${pixels}`,
    );
  }
  if (shard.labels.length !== shard.count) {
    throw new Error(`shard has ${shard.labels.length} labels, expected count = ${shard.count}`);
  }
  if (shard.globalIndices.length !== shard.count) {
    throw new Error(
      `shard has ${shard.globalIndices.length} global indices, expected count = ${shard.count}`,
    );
  }
}

function emptyWireShard(): WireShard {
  return {
    images: Buffer.alloc(0),
    labels: Buffer.alloc(0),
    globalIndices: [],
    count: 0,
    height: 0,
    width: 0,
    channels: 0,
  };
}
