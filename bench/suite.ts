// The whole benchmark suite on one GPU, as text lines and as one JSON object: adapter, copy GB/s, the
// kernel table at Tri-7B shapes with every split-K, the synthetic Tri-7B (weights made on the GPU) decode
// and prefill against the roofline, and, given a model folder (tri-tiny), forced-decoding agreement with
// the CPU reference. Used by the portable bundle (bench/portable.ts) and `npx tri-webgpu bench`.
import type { GpuContext } from '../src/gpu/context.ts';
import type { ModelFiles } from '../src/model/byte-source.ts';
import { type Agreement, forcedDecodingAgreement } from './correctness.ts';
import { benchAttention, benchCopy, benchLinear, bestCopyGBs, formatBenchTable, TRI7B_SHAPES } from './kernel-bench.ts';
import { type SyntheticOptions, syntheticRows } from './synthetic-bench.ts';

/** A small config of Tri-7B's proportions: the whole suite in seconds, even on a software GPU. */
export const TINY_SYNTHETIC_CONFIG = { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 64, vocab_size: 1000, max_position_embeddings: 512 };

/**
 * What the synthetic model measures: a tiny config in seconds (tests), or Tri-7B at 128/1K/4K positions.
 * A software adapter (`slow`: SwiftShader, 16–22 s per Tri-7B token on 2 cores) times 2 tokens per
 * position and a 16-token prefill instead of 16 tokens and 128/512/2K.
 */
export function syntheticOptionsFor(tiny: boolean, slow: boolean): SyntheticOptions {
  if (tiny) return { config: TINY_SYNTHETIC_CONFIG, weights: { format: 'q4' }, decodePositions: [32, 128], prefillLengths: [16, 64], decodeTokens: 4 };
  return { weights: { format: 'q4' }, decodePositions: [128, 1024, 4096], prefillLengths: slow ? [16] : [128, 512, 2048], decodeTokens: slow ? 2 : 16 };
}

export interface SuiteResult {
  tiny: boolean;
  adapter: GpuContext['capabilities'];
  copyGBs: number;
  kernels: Awaited<ReturnType<typeof benchCopy>>;
  synthetic: [string, string, string][];
  agreement: Agreement[];
  seconds: number;
}

const table = (rows: string[][]) => ['| measure | value | note |', '|---|---:|---|', ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

export async function runBenchSuite(gpu: GpuContext, options: { tiny: boolean; correctnessModel?: ModelFiles; print: (text: string) => void }): Promise<SuiteResult> {
  const { tiny, print } = options;
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  const { capabilities } = gpu;
  print(`adapter: ${capabilities.adapterDescription}`);
  print(`features: shader-f16 ${capabilities.shaderF16}, subgroups ${capabilities.subgroups}, timestamp-query ${capabilities.timestampQuery}`);
  print(`limits: maxBufferSize ${capabilities.maxBufferSize}, maxStorageBufferBindingSize ${capabilities.maxStorageBufferBindingSize}\n`);

  const copy = await benchCopy(gpu);
  const copyGBs = bestCopyGBs(copy);
  const shapes = tiny ? [{ name: 'tiny 1024×256', n: 1024, k: 256 }] : TRI7B_SHAPES;
  // A software adapter: only M=1 kernels (an M=128 Tri-7B row takes minutes there), and see syntheticOptionsFor.
  const slow = capabilities.memoryBudgetBytes !== undefined;
  const linear = await benchLinear(gpu, copyGBs, [['q4', { format: 'q4' }], ['f16', { format: 'f16' }]], shapes, tiny || slow ? [1] : [1, 128]);
  const kernels = [...copy, ...linear, ...(tiny ? [] : await benchAttention(gpu, copyGBs))];
  print(`## Kernels (${elapsed()})\n${formatBenchTable(kernels, capabilities.adapterDescription)}\n`);

  print('## Synthetic model, weights made on the GPU');
  const synthetic = await syntheticRows(gpu, copyGBs, syntheticOptionsFor(tiny, slow), (row) => print(`  ${row.join(' · ')} (${elapsed()})`));
  print(`\n${table(synthetic)}\n`);

  let agreement: Agreement[] = [];
  if (options.correctnessModel) {
    agreement = await forcedDecodingAgreement(gpu, options.correctnessModel, [{ format: 'f32' }, { format: 'q4' }]);
    const rows = agreement.map(({ format, positions, agreeing }) => [
      `${format}: top-1 agreement with the CPU reference`, `${((100 * agreeing) / positions).toFixed(1)}%`,
      `${agreeing} of ${positions} forced positions${format === 'f32' && agreeing !== positions ? ' — WRONG: f32 must agree everywhere' : ''}`,
    ]);
    print(`## Correctness (${elapsed()})\n${table(rows)}\n`);
  }
  return { tiny, adapter: capabilities, copyGBs, kernels, synthetic, agreement, seconds: (performance.now() - started) / 1000 };
}

/** Whether a result shows a wrong GPU or driver (f32 must agree with the CPU reference everywhere). */
export function suiteFailed(result: SuiteResult): boolean {
  return result.agreement.some(({ format, positions, agreeing }) => format === 'f32' && agreeing !== positions);
}
