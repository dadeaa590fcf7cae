import code from '../../kernels/vision-attention.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const visionAttentionKernel = { name: 'vision-attention', code, params: { positions: 'u32', heads: 'u32', headDim: 'u32', scale: 'f32' } } as const satisfies Kernel<ParamLayout>;

/** Positions one image may have (the kernel keeps a row of scores in workgroup memory). */
export const MAX_VISION_POSITIONS = 1024;

/** out [positions][heads·headDim] = softmax(q·kᵀ/√D)·v per head, every position seeing every other; qkv rows are q | k | v. */
export function visionAttention(recorder: CommandRecorder, args: { qkv: Binding; out: Binding; positions: number; heads: number; headDim: number }): void {
  if (args.positions > MAX_VISION_POSITIONS) throw new GpuLimitError(`vision attention: ${args.positions} positions per image (at most ${MAX_VISION_POSITIONS})`);
  const { positions, heads, headDim } = args;
  recorder.dispatch(visionAttentionKernel, { positions, heads, headDim, scale: 1 / Math.sqrt(headDim) }, [args.qkv, args.out], positions * heads);
}
