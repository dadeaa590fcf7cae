import code from '../../kernels/linear-tiled.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { CommandRecorder, Kernel } from '../gpu/recorder.ts';
import { FORMAT_CODE } from '../model/quant.ts';
import { type LinearArgs, linearKernel } from './linear.ts';

/** The tiled prefill kernel takes the same Params as linear.wgsl. */
export const linearTiledKernel = { name: 'linear-tiled', code, params: linearKernel.params } as const satisfies Kernel<typeof linearKernel.params>;

/** Rows and outputs of one workgroup tile (kernels/linear-tiled.wgsl). */
export const LINEAR_TILE = 32;
/** Fewest rows worth a tile: below this, most of a 32-row tile would be padding. */
export const LINEAR_TILED_MIN_ROWS = 16;

const EPILOGUE_CODE = { store: 0, accumulate: 1, siluGate: 2 } as const;

/** y = epilogue(x · Wᵀ) by 32 × 32 tiles staged in workgroup memory, one dispatch per part (prefill). */
export function linearTiled(recorder: CommandRecorder, args: LinearArgs): void {
  const { weights, m } = args;
  const { k } = weights.layout;
  const outputs = weights.parts.reduce((sum, part) => sum + part.outputs, 0);
  const xOffset = args.xOffset ?? 0;
  const xStride = args.xStride ?? k;
  if (k % 4 !== 0 || xOffset % 4 !== 0 || xStride % 4 !== 0) {
    throw new GpuLimitError(`linear: K=${k}, xOffset=${xOffset} and xStride=${xStride} must be multiples of 4 (x is read as vec4)`);
  }
  const epilogue = args.epilogue ?? 'store';
  if ((epilogue === 'siluGate') !== weights.gatedPair) throw new GpuLimitError('linear: the siluGate epilogue needs a gate/up pair matrix, and only it');
  const groupSize = weights.layout.groupSize || 32;
  if (weights.layout.format === 'q4' && groupSize % LINEAR_TILE !== 0) throw new GpuLimitError(`linear: the tiled kernel needs q4 groups of a multiple of ${LINEAR_TILE} (got ${groupSize})`);
  const constants = {
    FORMAT: FORMAT_CODE[weights.layout.format],
    GROUP_SIZE: groupSize,
    HAS_MIN: weights.layout.withMin ? 1 : 0,
    NORMALIZE: args.normalizeEps === undefined ? 0 : 1,
    EPILOGUE: EPILOGUE_CODE[epilogue],
  };
  for (const part of weights.parts) {
    recorder.dispatch(
      linearTiledKernel,
      {
        m, n: part.outputs, k, rowQuads: part.layout.paddedN / 4, xOffset, xStride,
        yOffset: (args.yOffset ?? 0) + part.outputStart, yStride: args.yStride ?? outputs, eps: args.normalizeEps ?? 0,
      },
      [args.x, part.data, part.scales, args.y],
      [Math.ceil(part.outputs / LINEAR_TILE), Math.ceil(m / LINEAR_TILE)],
      constants,
    );
  }
}
