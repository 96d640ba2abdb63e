import { backend_util, util } from '@tensorflow/tfjs-core';

/** Padding as the tfjs-core convolution ops accept it. */
export type ConvPad = 'same' | 'valid' | number | backend_util.ExplicitPadding;

/** The attributes shared by the Conv2DBackpropInput and Conv2DBackpropFilter kernels. */
export interface ConvBackpropAttrs {
  strides: number | [number, number];
  pad: ConvPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/**
 * Computes and checks the geometry of a stride/pad NHWC convolution whose gradient a kernel is asked for.
 *
 * Rejects NCHW data (the project stores activations as NHWC), non-positive or fractional strides, a filter
 * whose input channels differ from x, and a dy whose shape is not the forward output shape. Dilation is
 * always 1 because the tfjs backprop kernels carry no dilation attribute.
 */
export function computeBackpropGeometry(
  kernelName: string,
  xShape: readonly number[],
  filterShape: readonly number[],
  dyShape: readonly number[],
  attrs: ConvBackpropAttrs,
): backend_util.Conv2DInfo {
  checkRank4(kernelName, 'x', xShape);
  checkRank4(kernelName, 'filter', filterShape);
  checkRank4(kernelName, 'dy', dyShape);
  checkDataFormat(kernelName, attrs.dataFormat);
  checkStrides(kernelName, attrs.strides);

  const xChannels = xShape[3];
  if (filterShape[2] !== xChannels) {
    throw new Error(
      `${kernelName}: filter input channels must equal x channels, got filter [${filterShape}] for x [${xShape}]`,
    );
  }

  const info = backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  if (!util.arraysEqual(info.outShape, [...dyShape])) {
    throw new Error(
      `${kernelName}: dy must have the forward output shape [${info.outShape}] for x [${xShape}], ` +
        `filter [${filterShape}] and pad ${JSON.stringify(attrs.pad)}, got [${dyShape}]`,
    );
  }
  return info;
}

function checkRank4(kernelName: string, name: string, shape: readonly number[]): void {
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${kernelName}: ${name} must be a rank-4 shape of non-negative integers, got [${shape}]`);
  }
}

function checkDataFormat(kernelName: string, dataFormat: string | undefined): void {
  if (dataFormat === undefined || dataFormat === 'NHWC') return;
  throw new Error(`${kernelName}: dataFormat must be 'NHWC', got ${JSON.stringify(dataFormat)}`);
}

function checkStrides(kernelName: string, strides: number | [number, number]): void {
  const values = typeof strides === 'number' ? [strides] : strides;
  if (values.every((s) => Number.isInteger(s) && s >= 1)) return;
  throw new Error(`${kernelName}: strides must be positive integers, got ${JSON.stringify(strides)}`);
}
