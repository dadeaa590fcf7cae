import code from '../../kernels/rope-kv.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const ropeKvKernel = {
  name: 'rope-kv',
  code,
  params: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', startPos: 'u32', cacheOffset: 'u32' },
} as const satisfies Kernel<ParamLayout>;

export interface RopeKvArgs {
  qkv: Binding; //    [tokens][(heads + 2·kvHeads)·headDim]
  cosSin: Binding; // ropeCosSinTable
  q: Binding; //      [tokens][heads·headDim], rotated
  kCache: Binding; // [position][kvHeads·headDim]
  vCache: Binding;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  startPos: number;
  cacheOffset?: number;
}

/** RoPE on q and k of a fused Q/K/V projection; k and v go to their cache rows. */
export function ropeKv(recorder: CommandRecorder, args: RopeKvArgs): void {
  const { tokens, heads, kvHeads, headDim, startPos } = args;
  recorder.dispatch(
    ropeKvKernel,
    { tokens, heads, kvHeads, headDim, startPos, cacheOffset: args.cacheOffset ?? 0 },
    [args.cosSin, args.qkv, args.q, args.kCache, args.vCache],
    Math.ceil((tokens * (heads + 2 * kvHeads) * (headDim / 2)) / 64),
  );
}
