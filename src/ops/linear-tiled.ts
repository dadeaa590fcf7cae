import code from '../../kernels/linear-tiled.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { CommandRecorder, Kernel } from '../gpu/recorder.ts';
import { type LinearArgs, linearConstants, linearKernel, linearPartParams, linearShape } from './linear.ts';

/** The tiled prefill kernel takes the same Params as linear.wgsl. */
export const linearTiledKernel = { name: 'linear-tiled', code, params: linearKernel.params } as const satisfies Kernel<typeof linearKernel.params>;

/** Rows and outputs of one workgroup tile (kernels/linear-tiled.wgsl). */
export const LINEAR_TILE = 32;
/** Fewest rows worth a tile: below this, most of a 32-row tile would be padding. */
export const LINEAR_TILED_MIN_ROWS = 16;

/** y = epilogue(x · Wᵀ) by 32 × 32 tiles staged in workgroup memory, one dispatch per part (prefill). */
export function linearTiled(recorder: CommandRecorder, args: LinearArgs): void {
  const { weights, m } = args;
  const shape = linearShape(args);
  const constants = linearConstants(args, shape);
  if (weights.layout.format === 'q4' && constants.GROUP_SIZE % LINEAR_TILE !== 0) {
    throw new GpuLimitError(`linear: the tiled kernel needs q4 groups of a multiple of ${LINEAR_TILE} (got ${constants.GROUP_SIZE})`);
  }
  for (const part of weights.parts) {
    recorder.dispatch(
      linearTiledKernel, linearPartParams(args, shape, part), [args.x, part.data, part.scales, args.y],
      [Math.ceil(part.outputs / LINEAR_TILE), Math.ceil(m / LINEAR_TILE)], constants,
    );
  }
}
