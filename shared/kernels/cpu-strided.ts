/*
 * Strided iteration over an NHWC-style output for the cpu element-wise and reduction kernels. Each operand
 * is described by its strides over the output axes, 0 on axes where it is broadcast or reduced.
 */

/** Row-major strides of an operand of `shape` over the axes of `outShape`, 0 on the broadcast axes. */
export function stridesAgainst(shape: readonly number[], outShape: readonly number[]): number[] {
  const offset = outShape.length - shape.length;
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const size = shape[axis]!;
    strides[axis + offset] = size === 1 && outShape[axis + offset] !== 1 ? 0 : stride;
    stride *= size;
  }
  return strides;
}

/**
 * Merges adjacent axes along which every operand is laid out contiguously (or broadcast on both), so that
 * inner loops run as long as possible: [N,H,W,C] with [C] becomes [N·H·W, C].
 */
export function mergeAxes(
  shape: readonly number[],
  operandStrides: number[][],
): { shape: number[]; strides: number[][] } {
  const merged = [shape[shape.length - 1] ?? 1];
  const strides = operandStrides.map((s) => [s[s.length - 1] ?? 0]);
  for (let axis = shape.length - 2; axis >= 0; axis--) {
    const inner = merged[0]!;
    const canMerge = operandStrides.every((s, i) => s[axis] === strides[i]![0]! * inner);
    if (canMerge) {
      merged[0] = inner * shape[axis]!;
    } else {
      merged.unshift(shape[axis]!);
      operandStrides.forEach((s, i) => strides[i]!.unshift(s[axis]!));
    }
  }
  return { shape: merged, strides };
}

/**
 * Calls `row(offsets, length)` once per innermost row of `shape`, with each operand's offset of that row.
 * `strides[i]` are operand i's strides over the axes of `shape`.
 */
export function forEachRow(
  shape: number[],
  strides: number[][],
  row: (offsets: number[], length: number) => void,
): void {
  const rank = shape.length;
  const length = shape[rank - 1]!;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  if (length === 0 || rows === 0) return;

  const index = new Array<number>(rank).fill(0);
  const offsets = strides.map(() => 0);
  for (let r = 0; r < rows; r++) {
    row(offsets, length);

    // Advance the odometer over the outer axes and update the offsets incrementally.
    for (let axis = rank - 2; axis >= 0; axis--) {
      index[axis]!++;
      strides.forEach((s, i) => (offsets[i]! += s[axis]!));
      if (index[axis]! < shape[axis]!) break;
      strides.forEach((s, i) => (offsets[i]! -= s[axis]! * shape[axis]!));
      index[axis] = 0;
    }
  }
}
