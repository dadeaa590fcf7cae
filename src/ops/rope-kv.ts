import code from '../../kernels/rope-kv.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import type { BatchTables } from './batch-tables.ts';
import { KV_FORMAT_CODE, type KvCacheFormat } from './attention.ts';

export const ropeKvKernel = {
  name: 'rope-kv',
  code,
  params: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', sequencesOffset: 'u32', pageTableOffset: 'u32' },
} as const satisfies Kernel<ParamLayout>;

export interface RopeKvArgs {
  qkv: Binding; //       [tokens][(heads + 2·kvHeads)·headDim]
  cosSin: Binding; //    ropeCosSinTable
  tables: Binding; //    packBatchTables(…).data
  layout: Omit<BatchTables, 'data'>;
  q: Binding; //         [tokens][heads·headDim], rotated
  kCache: Binding; //    [page][KV_PAGE_TOKENS][kvHeads·headDim], f32 or packed f16
  vCache: Binding;
  /** K/V element type (default f32). */
  kvFormat?: KvCacheFormat;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** RoPE on q and k of a fused Q/K/V projection at each row's position; k and v go to their KV pages. */
export function ropeKv(recorder: CommandRecorder, args: RopeKvArgs): void {
  const { tokens, heads, kvHeads, headDim } = args;
  if (headDim % 4 !== 0) throw new GpuLimitError(`rope-kv: head_dim ${headDim} must be a multiple of 4`);
  recorder.dispatch(
    ropeKvKernel,
    { tokens, heads, kvHeads, headDim, sequencesOffset: args.layout.sequencesOffset, pageTableOffset: args.layout.pageTableOffset },
    [args.cosSin, args.qkv, args.tables, args.q, args.kCache, args.vCache],
    Math.ceil((tokens * (heads + 2 * kvHeads) * (headDim / 2)) / 64),
    { KV_FORMAT: KV_FORMAT_CODE[args.kvFormat ?? 'f32'] },
  );
}
