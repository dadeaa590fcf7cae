import code from '../../kernels/log-softmax.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const logSoftmaxKernel = {
  name: 'log-softmax',
  code,
  params: { vocab: 'u32', firstRow: 'u32', targetsPerRow: 'u32', targetStart: 'u32', outStart: 'u32', topK: 'u32', topStart: 'u32' },
} as const satisfies Kernel<ParamLayout>;

/** OpenAI's `top_logprobs` limit, and the most top entries one row asks for here. */
export const MAX_TOP_LOGPROBS = 20;

export interface LogSoftmaxArgs {
  /** Rows of `vocab` logits. */
  logits: Binding;
  vocab: number;
  /** Rows firstRow .. firstRow + rows − 1. */
  firstRow: number;
  rows: number;
  /** Token ids to score, targetsPerRow per row from targetStart (an id ≥ vocab is padding, scored 0). */
  targets: Binding;
  targetsPerRow: number;
  targetStart?: number;
  /** out[outStart + i·targetsPerRow + j]: the log-probability of row i's target j. */
  out: Binding;
  outStart?: number;
  /** The topK (≤ 20) most likely ids of each row and their log-probabilities, from topStart. */
  topK?: number;
  topIds: Binding;
  topLogprobs: Binding;
  topStart?: number;
}

/** Full-vocabulary log-softmax of each row, read only at the targets and the top k. */
export function logSoftmax(recorder: CommandRecorder, args: LogSoftmaxArgs): void {
  const topK = args.topK ?? 0;
  if (topK > MAX_TOP_LOGPROBS) throw new RangeError(`top logprobs go up to ${MAX_TOP_LOGPROBS} (asked for ${topK})`);
  recorder.dispatch(
    logSoftmaxKernel,
    {
      vocab: args.vocab, firstRow: args.firstRow, targetsPerRow: args.targetsPerRow, targetStart: args.targetStart ?? 0,
      outStart: args.outStart ?? 0, topK, topStart: args.topStart ?? 0,
    },
    [args.logits, args.targets, args.out, args.topIds, args.topLogprobs],
    args.rows,
  );
}
