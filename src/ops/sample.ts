import code from '../../kernels/sample.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import { subgroupVariant } from '../gpu/shader-variants.ts';
import type { SamplingConfig } from '../runtime/sampling.ts';
import { placeholderBuffer } from './linear.ts';

export const sampleKernel = { name: 'sample', code: subgroupVariant(code, false), params: { vocab: 'u32' } } as const satisfies Kernel<ParamLayout>;

/** The same kernel for devices with `subgroups`: its reductions combine a subgroup's lanes in registers first. */
export const sampleSubgroupKernel = { ...sampleKernel, name: 'sample.subgroups', code: subgroupVariant(code, true) } as const satisfies Kernel<ParamLayout>;

/** `struct SampleRow` of kernels/sample.wgsl, field by field (4-byte scalars). */
export const SAMPLE_ROW_LAYOUT = {
  offset: 'u32', resultIndex: 'u32', topK: 'u32', temperature: 'f32', topP: 'f32', minP: 'f32', repetitionPenalty: 'f32', seed: 'u32', step: 'u32',
  frequencyPenalty: 'f32', presencePenalty: 'f32', recordDraw: 'u32', stateSlot: 'u32', seenStart: 'u32', countsStart: 'u32', unused: 'u32',
} as const satisfies ParamLayout;

const SAMPLE_ROW_FIELDS = Object.entries(SAMPLE_ROW_LAYOUT) as [keyof typeof SAMPLE_ROW_LAYOUT, 'u32' | 'f32'][];
export const SAMPLE_ROW_BYTES = SAMPLE_ROW_FIELDS.length * 4;

/** One token to draw: from the logits at `offset`, with its settings and state. */
export interface SampleRow {
  config: SamplingConfig;
  /** The RNG counter: the index of the token being generated. */
  step: number;
  /** Where its logits start (elements). */
  offset: number;
  /** result[resultIndex] ← the token. */
  resultIndex: number;
  /** Where its seen bits (ceil(vocab / 32) u32, for the repetition penalty) and counts (vocab u32) start, in u32s. */
  seenStart: number;
  countsStart: number;
  /**
   * Record the drawn token in the row's state: set its bit in `seen`, add one to its count, and write it
   * to lastIds[stateSlot] (where the next step's embedding reads it). Default: seen and counts stay as given.
   */
  stateSlot?: number;
}

export interface SampleArgs {
  logits: Binding;
  /** Bit i of a row's set: token i is in its context. */
  seen: Binding;
  /** A row's counts[i]: times token i was generated, read only for frequency/presence penalties. */
  counts: Binding;
  result: Binding;
  /** Per state slot, the last drawn token: needed when a row has a stateSlot. */
  lastIds?: Binding;
  /** The rows' settings go here (SAMPLE_ROW_BYTES each), written now: one sample() per table per submit. */
  rowTable: GPUBuffer;
  vocab: number;
  rows: readonly SampleRow[];
  /** Reduce by subgroups first (needs the `subgroups` feature). */
  subgroups?: boolean;
}

/** Draws every row's next token (greedy at temperature 0) in one dispatch: a workgroup per row. */
export function sample(recorder: CommandRecorder, args: SampleArgs): void {
  const { rows } = args;
  if (rows.length === 0) return;
  if (rows.length * SAMPLE_ROW_BYTES > args.rowTable.size) throw new RangeError(`${rows.length} sampled rows do not fit the row table (${args.rowTable.size} bytes)`);
  if (rows.some((row) => row.stateSlot !== undefined) && !args.lastIds) throw new RangeError('rows that record their draw need lastIds');
  if (args.subgroups && !recorder.gpu.capabilities.subgroups) throw new GpuLimitError('sample: subgroup reductions need a device with the "subgroups" feature');
  const data = new ArrayBuffer(rows.length * SAMPLE_ROW_BYTES);
  const u32 = new Uint32Array(data);
  const f32 = new Float32Array(data);
  rows.forEach((row, i) => {
    const { config } = row;
    const values: { [K in keyof typeof SAMPLE_ROW_LAYOUT]: number } = {
      offset: row.offset, resultIndex: row.resultIndex, topK: config.topK, temperature: config.temperature, topP: config.topP, minP: config.minP,
      repetitionPenalty: config.repetitionPenalty, seed: config.seed, step: row.step, frequencyPenalty: config.frequencyPenalty, presencePenalty: config.presencePenalty,
      recordDraw: row.stateSlot === undefined ? 0 : 1, stateSlot: row.stateSlot ?? 0, seenStart: row.seenStart, countsStart: row.countsStart, unused: 0,
    };
    SAMPLE_ROW_FIELDS.forEach(([field, type], j) => {
      if (type === 'u32') u32[i * SAMPLE_ROW_FIELDS.length + j] = values[field];
      else f32[i * SAMPLE_ROW_FIELDS.length + j] = values[field];
    });
  });
  recorder.gpu.device.queue.writeBuffer(args.rowTable, 0, data);
  recorder.dispatch(
    args.subgroups ? sampleSubgroupKernel : sampleKernel, { vocab: args.vocab },
    [args.logits, args.seen, args.result, args.counts, args.lastIds ?? placeholderBuffer(recorder.gpu, 'write'), { buffer: args.rowTable, size: rows.length * SAMPLE_ROW_BYTES }],
    rows.length,
  );
}
