import code from '../../kernels/attention.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const attentionKernel = {
  name: 'attention',
  code,
  params: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', startPos: 'u32', scoreStride: 'u32', scale: 'f32' },
} as const satisfies Kernel<ParamLayout>;

export interface AttentionArgs {
  q: Binding; //      [tokens][heads·headDim]
  kCache: Binding; // [position][kvHeads·headDim], positions 0..startPos+tokens-1 filled
  vCache: Binding;
  scores: Binding; // scratch, ≥ tokens·heads·scoreStride f32
  out: Binding; //    [tokens][heads·headDim]
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  startPos: number;
  scoreStride: number;
}

/** Causal softmax attention of `tokens` queries at positions startPos.. over the cached keys/values. */
export function attention(recorder: CommandRecorder, args: AttentionArgs): void {
  const { tokens, heads, kvHeads, headDim, startPos, scoreStride } = args;
  if (startPos + tokens > scoreStride) throw new RangeError(`attention: ${startPos + tokens} positions exceed scoreStride ${scoreStride}`);
  recorder.dispatch(
    attentionKernel,
    { tokens, heads, kvHeads, headDim, startPos, scoreStride, scale: 1 / Math.sqrt(headDim) },
    [args.q, args.kCache, args.vCache, args.scores, args.out],
    tokens * heads,
  );
}
