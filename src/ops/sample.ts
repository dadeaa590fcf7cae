import code from '../../kernels/sample.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import type { SamplingConfig } from '../runtime/sampling.ts';
import { placeholderBuffer } from './linear.ts';

export const sampleKernel = {
  name: 'sample',
  code,
  params: {
    vocab: 'u32', offset: 'u32', resultIndex: 'u32', topK: 'u32',
    temperature: 'f32', topP: 'f32', minP: 'f32', repetitionPenalty: 'f32', seed: 'u32', step: 'u32',
    frequencyPenalty: 'f32', presencePenalty: 'f32', recordDraw: 'u32', stateSlot: 'u32',
  },
} as const satisfies Kernel<ParamLayout>;

export interface SampleArgs {
  logits: Binding;
  /** Bit i set: token i is in the context (for the repetition penalty); ceil(vocab / 32) u32. */
  seen: Binding;
  /** counts[i]: times token i was generated (vocab u32), read only for frequency/presence penalties. */
  counts: Binding;
  /**
   * Record the drawn token in the sequence's state: set its bit in `seen`, add one to its count, and write
   * it to lastIds[stateSlot] (where the next step's embedding reads it). Default: seen and counts stay as given.
   */
  record?: { lastIds: Binding; stateSlot: number };
  result: Binding;
  vocab: number;
  config: SamplingConfig;
  /** The RNG counter: the index of the token being generated. */
  step: number;
  offset?: number;
  resultIndex?: number;
}

/** result[resultIndex] = the next token drawn from the logits (greedy at temperature 0). */
export function sample(recorder: CommandRecorder, args: SampleArgs): void {
  const { config } = args;
  recorder.dispatch(
    sampleKernel,
    {
      vocab: args.vocab, offset: args.offset ?? 0, resultIndex: args.resultIndex ?? 0, topK: config.topK,
      temperature: config.temperature, topP: config.topP, minP: config.minP, repetitionPenalty: config.repetitionPenalty,
      seed: config.seed, step: args.step, frequencyPenalty: config.frequencyPenalty, presencePenalty: config.presencePenalty,
      recordDraw: args.record ? 1 : 0, stateSlot: args.record?.stateSlot ?? 0,
    },
    [args.logits, args.seen, args.result, args.counts, args.record?.lastIds ?? placeholderBuffer(recorder.gpu, 'write')],
    1,
  );
}
