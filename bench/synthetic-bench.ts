// The synthetic-model benchmark, shared by Node (`npm run bench -- synthetic`), the suite and the benchmark
// page: a model of Tri-7B's exact shapes (or any config) whose weights are made on the GPU from a seed
// (src/model/synthetic.ts), so true 7B decode and prefill speed are measured after seconds of setup; or
// the same measurements on a real model the user names. Decode is timed at several context positions (the
// earlier positions are assumed, not computed: attention reads them all the same) against the roofline:
// best copy GB/s ÷ bytes read per token (weights + K/V so far). Where the device has timestamp-query, each
// step's GPU time is read too, so the host's share (the GPU idle between steps) shows.
import type { GpuContext } from '../src/gpu/context.ts';
import type { ArtifactWeights } from '../src/model/artifact.ts';
import type { LlamaSpec } from '../src/model/config.ts';
import { GpuLlama, SAMPLED_TOKEN, type StepResult, gpuIdleShare, gpuLlamaMemoryPlan, seenBits } from '../src/model/llama-gpu.ts';
import { samplingConfig } from '../src/runtime/sampling.ts';
import type { WeightFormatOptions } from '../src/model/quant.ts';
import type { SafetensorsCheckpoint } from '../src/model/safetensors.ts';
import { SyntheticWeights, syntheticSpec } from '../src/model/synthetic.ts';
import { bytesPerDecodedToken } from './runtime-bench.ts';

/** A real model to measure instead of the synthetic one (opened by openWeights). */
export interface NamedModel {
  name: string;
  spec: LlamaSpec;
  weights: SafetensorsCheckpoint | ArtifactWeights;
}

export interface SyntheticOptions {
  /** config.json fields over Tri-7B's (e.g. a tiny config for CI). */
  config?: Record<string, unknown>;
  /** Measure this model instead of a synthetic one. */
  model?: NamedModel;
  weights: WeightFormatOptions;
  decodePositions: number[];
  prefillLengths: number[];
  /** Tokens timed per decode position. */
  decodeTokens: number;
}

const tokens = (length: number, vocab: number) => Array.from({ length }, (_, i) => (i * 7919 + 13) % Math.min(1000, vocab));
const seconds = (start: number) => (performance.now() - start) / 1000;

/** One decode measurement, for plots. */
export interface DecodePoint {
  position: number;
  tokensPerSecond: number;
  rooflineTokensPerSecond: number;
  /** GPU ms per token (timestamp queries), where the device has them. */
  gpuMsPerToken?: number;
}

const rate = (value: number) => value.toFixed(value < 1 ? 3 : 1);

/**
 * Decodes `count` greedy tokens from `position` as the scheduler does: each step queued before the
 * previous one's id is read (its token taken on the GPU, SAMPLED_TOKEN), two steps in flight. Earlier
 * positions are assumed, as for the unpipelined loop. Returns the wall time of the `count` steps in ms.
 */
async function pipelinedDecodeMs(model: GpuLlama, position: number, count: number): Promise<number> {
  const { kv } = model;
  const { sequence } = kv.createSequence([], { shareable: false });
  try {
    model.copyKvPages(kv.append(sequence.id, new Array<number>(position - 1).fill(0)).copies);
    const sampling = samplingConfig();
    const run = (i: number) => {
      model.copyKvPages(kv.append(sequence.id, [0]).copies);
      const output = { kind: 'sample' as const, sampling, step: i, ...(i === 0 ? { seen: seenBits(model.spec.vocabSize, []) } : {}) };
      return model.step([{ pages: kv.sequence(sequence.id).pages, tokens: [i === 0 ? 1 : SAMPLED_TOKEN], startPos: position - 1 + i, stateSlot: 0, output }]);
    };
    await run(0); // the first token, as the unpipelined loop's warm-up
    model.gpuSpans.splice(0);
    const queued: Promise<StepResult>[] = [];
    const start = performance.now();
    for (let i = 1; i <= count; i++) {
      queued.push(run(i));
      if (queued.length === 2) await queued.shift();
    }
    await Promise.all(queued);
    return performance.now() - start;
  } finally {
    kv.finish(sequence.id);
  }
}

/** The table: label, value, note. Decode measurements are also appended to `points` when given. */
export async function syntheticRows(
  gpu: GpuContext, copyGBs: number, options: SyntheticOptions, onRow: (row: [string, string, string]) => void = () => {}, points: DecodePoint[] = [],
): Promise<[string, string, string][]> {
  const spec = options.model?.spec ?? syntheticSpec(options.config);
  const name = options.model?.name ?? (options.config ? `synthetic ${spec.numLayers}×${spec.hiddenSize}` : 'synthetic Tri-7B');
  const vocab = spec.vocabSize;
  const format = `${options.weights.format}${options.weights.format === 'q4' ? ` G=${options.weights.groupSize ?? 32}` : ''}`;
  // A named model measures only the positions and prompt lengths its context holds.
  const fits = (length: number) => length + options.decodeTokens + 1 <= spec.maxPositions;
  const decodePositions = options.decodePositions.filter(fits);
  const prefillLengths = options.prefillLengths.filter(fits);
  if (decodePositions.length === 0 || prefillLengths.length === 0) throw new RangeError(`${name}'s context (${spec.maxPositions} positions) is too short for this benchmark`);
  const contextLength = Math.max(...decodePositions, ...prefillLengths) + options.decodeTokens + 1;
  const rows: [string, string, string][] = [];
  const push = (row: [string, string, string]) => {
    rows.push(row);
    onRow(row);
  };
  let start = performance.now();
  const source = options.model?.weights ?? new SyntheticWeights(1);
  const model = await GpuLlama.load(gpu, spec, source, { weights: options.weights, kvCache: 'f16', contextLength, maxSequences: 1 });
  model.timeGpu = true;
  try {
    await gpu.device.queue.onSubmittedWorkDone();
    const plan = gpuLlamaMemoryPlan(spec, contextLength, { weights: options.weights, kvCache: 'f16', maxSequences: 1 });
    push([`${name} ${format}: ${options.model ? 'load' : 'setup (weights made on the GPU)'}`, `${seconds(start).toFixed(1)} s`, `${plan.totalBytes >= 2 ** 30 ? `${(plan.totalBytes / 2 ** 30).toFixed(2)} GiB` : `${(plan.totalBytes / 2 ** 20).toFixed(1)} MiB`} of GPU buffers, split-K ${model.linearSplitK} chosen`]);
    for (const position of decodePositions) {
      model.reset();
      model.assumePositions(position - 1);
      let id = await model.forwardSample([1]); // compiles and warms at this context length
      model.gpuSpans.splice(0);
      start = performance.now();
      let hostMs = 0;
      let gpuMs: number | undefined = 0;
      for (let i = 0; i < options.decodeTokens; i++) {
        id = await model.forwardSample([id % vocab]);
        hostMs += model.lastHostMs;
        gpuMs = gpuMs === undefined || model.lastGpuMs === undefined ? undefined : gpuMs + model.lastGpuMs;
      }
      const unpipelinedMs = performance.now() - start;
      const unpipelinedIdle = gpuIdleShare(model.gpuSpans.splice(0));
      model.reset();
      const wallMs = await pipelinedDecodeMs(model, position, options.decodeTokens);
      const idle = gpuIdleShare(model.gpuSpans.splice(0));
      const tokensPerSecond = options.decodeTokens / (wallMs / 1000);
      const bytes = bytesPerDecodedToken(spec, options.weights, position, 2); // the f16 KV cache
      const roofline = (copyGBs * 1e9) / bytes;
      const gpuMsPerToken = gpuMs === undefined ? undefined : gpuMs / options.decodeTokens;
      points.push({ position, tokensPerSecond, rooflineTokensPerSecond: roofline, gpuMsPerToken });
      // GPU idle = the gaps between steps' timestamps ÷ their span: the GPU waiting for the host.
      const gpuNote = gpuMs === undefined
        ? 'GPU time not available (no timestamp-query)'
        : `GPU ${gpuMsPerToken!.toFixed(2)} ms/token, idle ${(100 * idle).toFixed(1)}% between steps (unpipelined ${(100 * unpipelinedIdle).toFixed(1)}%)`;
      const unpipelinedNote = `unpipelined ${rate(options.decodeTokens / (unpipelinedMs / 1000))} tok/s (×${(unpipelinedMs / wallMs).toFixed(2)} faster pipelined)`;
      push([
        `${name} ${format} decode at position ${position}`, `${rate(tokensPerSecond)} tok/s`,
        `${(tokensPerSecond / roofline).toFixed(2)} of roofline (${rate(roofline)} tok/s = ${copyGBs.toFixed(1)} GB/s ÷ ${(bytes / 1e6).toFixed(0)} MB/token); ${unpipelinedNote}; ${model.lastDispatchCount} dispatches/token, host ${(hostMs / options.decodeTokens).toFixed(2)} ms/token, ${gpuNote}`,
      ]);
    }
    model.reset();
    await model.forwardSample(tokens(Math.min(16, ...prefillLengths), vocab)); // compiles the M > 1 kernels
    for (const length of prefillLengths) {
      model.reset();
      start = performance.now();
      await model.forwardSample(tokens(length, vocab));
      const tokensPerSecond = length / seconds(start);
      const gpuNote = model.lastGpuMs === undefined ? '' : `, GPU ${(model.lastGpuMs / length).toFixed(2)} ms/token`;
      push([`${name} ${format} prefill, ${length} tokens`, `${rate(tokensPerSecond)} tok/s`, `${model.lastDispatchCount} dispatches${gpuNote}`]);
    }
  } finally {
    model.destroy();
  }
  return rows;
}
