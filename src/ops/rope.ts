import code from '../../kernels/rope.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const ropeKernel = {
  name: 'rope',
  code,
  params: { tokens: 'u32', heads: 'u32', headDim: 'u32', startPos: 'u32', offset: 'u32', rowStride: 'u32' },
} as const satisfies Kernel<ParamLayout>;

/** Rotate-half RoPE in place on `tokens` rows of `heads` vectors, positions startPos.. (cosSin from ropeCosSinTable). */
export function rope(
  recorder: CommandRecorder,
  args: { x: Binding; cosSin: Binding; tokens: number; heads: number; headDim: number; startPos: number; offset?: number; rowStride?: number },
): void {
  const { tokens, heads, headDim, startPos } = args;
  recorder.dispatch(
    ropeKernel,
    { tokens, heads, headDim, startPos, offset: args.offset ?? 0, rowStride: args.rowStride ?? heads * headDim },
    [args.cosSin, args.x],
    Math.ceil((tokens * heads * headDim) / 2 / 64),
  );
}
