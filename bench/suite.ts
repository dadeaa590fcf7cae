// The whole benchmark suite on one GPU, as text lines and as one JSON object: adapter, copy GB/s, the
// kernel table at Tri-7B shapes with every split-K, the synthetic Tri-7B (weights made on the GPU) decode
// and prefill against the roofline, the same on a model the user names, and, given a model folder
// (tri-tiny), forced-decoding agreement with the CPU reference. Used by the portable bundle
// (bench/portable.ts), `npx tri-webgpu bench` and the benchmark page (results shown as they arrive).
import { GpuLimitError, GpuOutOfMemoryError } from '../src/errors.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import type { ModelFiles } from '../src/model/byte-source.ts';
import { openWeights } from '../src/model/open.ts';
import { type Agreement, agreementRows, forcedDecodingAgreement, ReferenceTooLargeError } from './correctness.ts';
import { hostCostRows } from './host-cost.ts';
import { benchAttention, benchCopy, benchLinear, benchSampler, type BenchRow, bestCopyGBs, formatBenchTable, TRI7B_SHAPES } from './kernel-bench.ts';
import { type DecodePoint, type SyntheticOptions, syntheticRows } from './synthetic-bench.ts';

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

export type TableRow = [string, string, string];

export interface SuiteResult {
  tiny: boolean;
  adapter: GpuContext['capabilities'];
  copyGBs: number;
  kernels: BenchRow[];
  /** The synthetic model's rows, then the named model's. */
  synthetic: TableRow[];
  /** Host (JS) ms per decode step of Tri-7B's 32-layer structure at small widths (bench/host-cost.ts). */
  host: [string, string][];
  /** Decode tok/s by position, per model measured. */
  decode: { model: string; points: DecodePoint[] }[];
  agreement: Agreement[];
  seconds: number;
}

export interface SuiteOptions {
  tiny: boolean;
  /** Forced-decoding agreement with the CPU reference on this model (small: its f32 weights go through JS). */
  correctnessModel?: ModelFiles;
  /** A real model measured like the synthetic one (decode at the same positions, prefill). */
  model?: { name: string; files: ModelFiles };
  /** Measure the synthetic model (default); off for a kernels-only run. */
  synthetic?: boolean;
  print: (text: string) => void;
  /** Results as they arrive (the page's tables and plots). */
  onKernels?: (rows: BenchRow[]) => void;
  onModelRow?: (row: TableRow) => void;
  onHostRows?: (rows: [string, string][]) => void;
}

const table = (rows: string[][]) => ['| measure | value | note |', '|---|---:|---|', ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

/**
 * Measures one model's decode and prefill; a model too big for this device is a row saying so (with the
 * plan's reasons), not a failed suite: a phone still gets its kernel table and correctness.
 */
async function modelRows(gpu: GpuContext, copyGBs: number, options: SyntheticOptions, onRow: (row: TableRow) => void): Promise<{ rows: TableRow[]; points: DecodePoint[] }> {
  const points: DecodePoint[] = [];
  try {
    return { rows: await syntheticRows(gpu, copyGBs, options, onRow, points), points };
  } catch (error) {
    if (!(error instanceof GpuOutOfMemoryError || error instanceof GpuLimitError)) throw error;
    const row: TableRow = [`${options.model?.name ?? 'synthetic Tri-7B'}: does not fit this device`, '—', error.message];
    onRow(row);
    return { rows: [row], points };
  }
}

export async function runBenchSuite(gpu: GpuContext, options: SuiteOptions): Promise<SuiteResult> {
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
  const kernels = [...copy, ...linear, ...(tiny ? [] : [...(await benchAttention(gpu, copyGBs)), ...(await benchSampler(gpu, copyGBs))])];
  options.onKernels?.(kernels);
  print(`## Kernels (${elapsed()})\n${formatBenchTable(kernels, capabilities.adapterDescription)}\n`);
  // The host's share of a step: on a fast GPU it, not the kernels, bounds small-batch decode.
  const host = await hostCostRows(gpu, tiny ? 10 : 40);
  options.onHostRows?.(host);
  print(`## Host cost per decode step (${elapsed()})\n${table(host.map(([measure, value]) => [measure, value, '']))}\n`);

  if (options.synthetic !== false) print('## Synthetic model, weights made on the GPU');
  const onRow = (row: TableRow) => {
    options.onModelRow?.(row);
    print(`  ${row.join(' · ')} (${elapsed()})`);
  };
  const syntheticOptions = syntheticOptionsFor(tiny, slow);
  const decode: SuiteResult['decode'] = [];
  const synthetic: TableRow[] = [];
  if (options.synthetic !== false) {
    const measured = await modelRows(gpu, copyGBs, syntheticOptions, onRow);
    decode.push({ model: tiny ? 'synthetic (tiny)' : 'synthetic Tri-7B', points: measured.points });
    synthetic.push(...measured.rows);
  }
  if (options.model) {
    print(`\n## ${options.model.name}`);
    const { spec, weights } = await openWeights(options.model.files);
    const named = await modelRows(gpu, copyGBs, { ...syntheticOptions, model: { name: options.model.name, spec, weights } }, onRow);
    decode.push({ model: options.model.name, points: named.points });
    synthetic.push(...named.rows);
  }
  if (synthetic.length) print(`\n${table(synthetic)}\n`);

  let agreement: Agreement[] = [];
  if (options.correctnessModel) {
    try {
      agreement = await forcedDecodingAgreement(gpu, options.correctnessModel, [{ format: 'f32' }, { format: 'q4' }]);
      print(`## Correctness (${elapsed()})\n${table(agreementRows(agreement))}\n`);
    } catch (error) {
      if (!(error instanceof ReferenceTooLargeError)) throw error;
      print(`## Correctness: not checked: ${error.message}\n`);
    }
  }
  return { tiny, adapter: capabilities, copyGBs, kernels, host, synthetic, decode, agreement, seconds: (performance.now() - started) / 1000 };
}

/** Whether a result shows a wrong GPU or driver (f32 must agree with the CPU reference everywhere). */
export function suiteFailed(result: SuiteResult): boolean {
  return result.agreement.some(({ format, positions, agreeing }) => format === 'f32' && agreeing !== positions);
}
