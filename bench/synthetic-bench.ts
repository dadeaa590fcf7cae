// The synthetic-model benchmark, shared by Node (`npm run bench -- synthetic`) and later the benchmark
// page: a model of Tri-7B's exact shapes (or any config) whose weights are made on the GPU from a seed
// (src/model/synthetic.ts), so true 7B decode and prefill speed are measured after seconds of setup. Decode
// is timed at several context positions (the earlier positions are assumed, not computed: attention reads
// them all the same) against the roofline: best copy GB/s ÷ bytes read per token (weights + K/V so far).
import type { GpuContext } from '../src/gpu/context.ts';
import { GpuLlama, gpuLlamaMemoryPlan } from '../src/model/llama-gpu.ts';
import type { WeightFormatOptions } from '../src/model/quant.ts';
import { SyntheticWeights, syntheticSpec } from '../src/model/synthetic.ts';
import { bytesPerDecodedToken } from './runtime-bench.ts';

export interface SyntheticOptions {
  /** config.json fields over Tri-7B's (e.g. a tiny config for CI). */
  config?: Record<string, unknown>;
  weights: WeightFormatOptions;
  decodePositions: number[];
  prefillLengths: number[];
  /** Tokens timed per decode position. */
  decodeTokens: number;
}

const tokens = (length: number) => Array.from({ length }, (_, i) => (i * 7919 + 13) % 1000);
const seconds = (start: number) => (performance.now() - start) / 1000;

/** One decode measurement, for plots. */
export interface DecodePoint {
  position: number;
  tokensPerSecond: number;
  rooflineTokensPerSecond: number;
}

/** The table: label, value, note. Decode measurements are also appended to `points` when given. */
export async function syntheticRows(
  gpu: GpuContext, copyGBs: number, options: SyntheticOptions, onRow: (row: [string, string, string]) => void = () => {}, points: DecodePoint[] = [],
): Promise<[string, string, string][]> {
  const spec = syntheticSpec(options.config);
  const name = options.config ? `synthetic ${spec.numLayers}×${spec.hiddenSize}` : 'synthetic Tri-7B';
  const format = `${options.weights.format}${options.weights.format === 'q4' ? ` G=${options.weights.groupSize ?? 32}` : ''}`;
  const contextLength = Math.max(...options.decodePositions, ...options.prefillLengths) + options.decodeTokens + 1;
  const rows: [string, string, string][] = [];
  const push = (row: [string, string, string]) => {
    rows.push(row);
    onRow(row);
  };
  let start = performance.now();
  const model = await GpuLlama.load(gpu, spec, new SyntheticWeights(1), { weights: options.weights, kvCache: 'f16', contextLength, maxSequences: 1 });
  try {
    await gpu.device.queue.onSubmittedWorkDone();
    const plan = gpuLlamaMemoryPlan(spec, contextLength, { weights: options.weights, kvCache: 'f16', maxSequences: 1 });
    push([`${name} ${format}: setup (weights made on the GPU)`, `${seconds(start).toFixed(1)} s`, `${plan.totalBytes >= 2 ** 30 ? `${(plan.totalBytes / 2 ** 30).toFixed(2)} GiB` : `${(plan.totalBytes / 2 ** 20).toFixed(1)} MiB`} of GPU buffers, split-K ${model.linearSplitK} chosen`]);
    for (const position of options.decodePositions) {
      model.reset();
      model.assumePositions(position - 1);
      let id = await model.forwardSample([1]); // compiles and warms at this context length
      start = performance.now();
      let hostMs = 0;
      for (let i = 0; i < options.decodeTokens; i++) {
        id = await model.forwardSample([id % 1000]);
        hostMs += model.lastHostMs;
      }
      const tokensPerSecond = options.decodeTokens / seconds(start);
      const bytes = bytesPerDecodedToken(spec, options.weights, position, 2); // the f16 KV cache
      const roofline = (copyGBs * 1e9) / bytes;
      points.push({ position, tokensPerSecond, rooflineTokensPerSecond: roofline });
      push([
        `${name} ${format} decode at position ${position}`, `${tokensPerSecond.toFixed(tokensPerSecond < 1 ? 3 : 1)} tok/s`,
        `${(tokensPerSecond / roofline).toFixed(2)} of roofline (${roofline.toFixed(roofline < 1 ? 3 : 1)} tok/s = ${copyGBs.toFixed(1)} GB/s ÷ ${(bytes / 1e6).toFixed(0)} MB/token); ${model.lastDispatchCount} dispatches/token, host ${(hostMs / options.decodeTokens).toFixed(2)} ms/token`,
      ]);
    }
    model.reset();
    await model.forwardSample(tokens(Math.min(16, ...options.prefillLengths))); // compiles the M > 1 kernels
    for (const length of options.prefillLengths) {
      model.reset();
      start = performance.now();
      await model.forwardSample(tokens(length));
      push([`${name} ${format} prefill, ${length} tokens`, `${(length / seconds(start)).toFixed(length / seconds(start) < 1 ? 3 : 1)} tok/s`, `${model.lastDispatchCount} dispatches in the last chunk`]);
    }
  } finally {
    model.destroy();
  }
  return rows;
}
