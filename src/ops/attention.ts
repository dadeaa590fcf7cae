import code from '../../kernels/paged-attention.wgsl?raw';
import reduceCode from '../../kernels/attention-reduce.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import type { BatchTables } from './batch-tables.ts';

export const pagedAttentionKernel = {
  name: 'paged-attention',
  code,
  params: { rows: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', scale: 'f32', sequencesOffset: 'u32', pageTableOffset: 'u32', documentsOffset: 'u32' },
} as const satisfies Kernel<ParamLayout>;

export const attentionReduceKernel = {
  name: 'attention-reduce',
  code: reduceCode,
  params: { rows: 'u32', heads: 'u32', headDim: 'u32', splits: 'u32' },
} as const satisfies Kernel<ParamLayout>;

export interface AttentionArgs {
  q: Binding; //         [rows][heads·headDim], rotated
  tables: Binding; //    packBatchTables(…).data: rows, sequences, page tables, documents
  layout: Omit<BatchTables, 'data'>;
  kCache: Binding;
  vCache: Binding;
  /** Scratch for split-KV: at least attentionPartialBytes(rows, heads, headDim, splits). */
  partials: Binding;
  out: Binding; //       [rows][heads·headDim]
  rowCount: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Key ranges per (row, head) searched in parallel; > 1 adds the reduce pass (decode). */
  splits: number;
  /** K/V element type (default f32). */
  kvFormat?: KvCacheFormat;
}

/**
 * KV cache element types: f32 (exact), f16 (half the memory) or int8 with one f32 scale per token and
 * head (headDim + 4 bytes per head: Tri-7B's 4096-position cache in 1.03 GiB instead of 2).
 */
export type KvCacheFormat = 'f32' | 'f16' | 'int8';
export const KV_FORMAT_CODE: Record<KvCacheFormat, number> = { f32: 0, f16: 1, int8: 2 }; // KV_FORMAT in WGSL

/** Bytes one token takes in one layer's K (or V) cache. */
export function kvTokenBytes(kvHeads: number, headDim: number, format: KvCacheFormat): number {
  return kvHeads * (format === 'int8' ? headDim + 4 : headDim * (format === 'f16' ? 2 : 4));
}

export const attentionPartialBytes = (rows: number, heads: number, headDim: number, splits: number) => rows * heads * splits * (headDim + 4) * 4;

/** Masked attention of a batch of rows over the paged KV cache (one dispatch, two with splits > 1). */
export function attention(recorder: CommandRecorder, args: AttentionArgs): void {
  const { rowCount, heads, kvHeads, headDim, splits } = args;
  if (headDim % 4 !== 0 || headDim > 128) throw new GpuLimitError(`attention: head_dim ${headDim} must be a multiple of 4 and at most 128`);
  recorder.dispatch(
    pagedAttentionKernel,
    {
      rows: rowCount, heads, kvHeads, headDim, scale: 1 / Math.sqrt(headDim),
      sequencesOffset: args.layout.sequencesOffset, pageTableOffset: args.layout.pageTableOffset, documentsOffset: args.layout.documentsOffset,
    },
    [args.q, args.tables, args.kCache, args.vCache, args.partials, args.out],
    Math.ceil((rowCount * heads * splits) / 64),
    { SPLITS: splits, KV_FORMAT: KV_FORMAT_CODE[args.kvFormat ?? 'f32'] },
  );
  if (splits === 1) return;
  recorder.dispatch(attentionReduceKernel, { rows: rowCount, heads, headDim, splits }, [args.partials, args.out], Math.ceil((rowCount * heads * headDim) / 4 / 64));
}
