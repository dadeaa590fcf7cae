// Kernel benchmark shared by `npm run bench` (Node) and the benchmark page (Chromium): each kernel at
// Tri-7B shapes, in GB/s and as a ratio to the best copy kernel measured in the same run on the same
// adapter (DESIGN.md §6). Effective bytes = weights + scales + activations read + outputs written.
import type { GpuContext } from '../src/gpu/context.ts';
import { CommandRecorder } from '../src/gpu/recorder.ts';
import { destroyGpuMatrix } from '../src/model/gpu-weights.ts';
import { type WeightFormatOptions, weightLayout } from '../src/model/quant.ts';
import { KV_PAGE_TOKENS } from '../src/kv/paged-cache.ts';
import { attention, attentionPartialBytes } from '../src/ops/attention.ts';
import { packBatchTables } from '../src/ops/batch-tables.ts';
import { type GpuMatrix, linear, linearGemvChoices } from '../src/ops/linear.ts';
import { linearTiled } from '../src/ops/linear-tiled.ts';
import { SAMPLE_ROW_BYTES, sample } from '../src/ops/sample.ts';
import { samplingConfig } from '../src/runtime/sampling.ts';
import copyCode from './copy.wgsl?raw';

export interface BenchRow {
  kernel: string;
  shape: string;
  ms: number;
  gbPerSecond: number;
  ofCopy: number;
  /** Multiply-adds ×2 per second, for kernels that compute (prefill is compute-bound). */
  gflops?: number;
}

const copyKernel = { name: 'copy', code: copyCode, params: { count: 'u32', threads: 'u32' } } as const;

/** Seconds per repetition of `record`, timed over one submit after a warm-up submit. */
async function timeDispatches(gpu: GpuContext, record: (recorder: CommandRecorder) => void, repeats: number): Promise<number> {
  for (const count of [1, repeats]) {
    const recorder = new CommandRecorder(gpu);
    for (let i = 0; i < count; i++) record(recorder);
    const start = performance.now();
    recorder.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.checkHealthy(); // a failed dispatch must not pass as a fast one
    if (count === repeats) return (performance.now() - start) / 1000 / repeats;
  }
  throw new Error('unreachable');
}

export async function benchCopy(gpu: GpuContext): Promise<BenchRow[]> {
  const bytes = 64 << 20;
  const source = gpu.createBuffer('copy.src', bytes);
  const target = gpu.createBuffer('copy.dst', bytes);
  const rows: BenchRow[] = [];
  for (const [workgroupSize, perThread] of [[64, 1], [256, 1], [256, 4], [64, 8]] as const) {
    const count = bytes / 16;
    const threads = Math.ceil(count / perThread);
    const seconds = await timeDispatches(gpu, (r) => r.dispatch(copyKernel, { count, threads }, [source, target], Math.ceil(threads / workgroupSize), { WORKGROUP_SIZE: workgroupSize, PER_THREAD: perThread }), 5);
    const gbPerSecond = (2 * bytes) / seconds / 1e9;
    rows.push({ kernel: `copy wg=${workgroupSize}×${perThread}`, shape: '64 MiB', ms: seconds * 1000, gbPerSecond, ofCopy: 0 });
  }
  source.destroy();
  target.destroy();
  const best = Math.max(...rows.map((row) => row.gbPerSecond));
  for (const row of rows) row.ofCopy = row.gbPerSecond / best;
  return rows;
}

/** The best copy kernel's GB/s: the bandwidth every ratio and roofline here is measured against. */
export const bestCopyGBs = (copy: readonly BenchRow[]): number => Math.max(...copy.map((row) => row.gbPerSecond));

export const TRI7B_SHAPES: { name: string; n: number; k: number }[] = [
  { name: 'q/o 4096×4096', n: 4096, k: 4096 },
  { name: 'gate/up 11008×4096', n: 11008, k: 4096 },
  { name: 'down 4096×11008', n: 4096, k: 11008 },
  { name: 'lm_head 128256×4096', n: 128256, k: 4096 },
];

export async function benchLinear(
  gpu: GpuContext, copyGBs: number, formats: [string, WeightFormatOptions][], shapes = TRI7B_SHAPES, ms: number[] = [1, 128],
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const { name, n, k } of shapes) {
    for (const [formatName, format] of formats) {
      const layout = weightLayout(n, k, format);
      // Zero-filled buffers: the kernels' speed does not depend on the values, and a 1 GiB f16 lm_head
      // need not pass through JS memory.
      const data = gpu.createBuffer(name, layout.dataBytes);
      const scales = gpu.createBuffer(`${name}.scales`, Math.max(16, layout.scaleBytes));
      const matrix: GpuMatrix = { layout, gatedPair: false, parts: [{ outputStart: 0, outputs: n, layout, data, scales }] };
      for (const m of ms) {
        const x = gpu.createBuffer('x', m * k * 4);
        const y = gpu.createBuffer('y', m * n * 4);
        const repeats = m === 1 ? 5 : 1;
        // Decode: each split-K, with its shares added by subgroup shuffles too where the adapter has them;
        // prefill: the row-quad kernel and the tiled one (kernels/linear-tiled.wgsl).
        const variants = m === 1
          ? linearGemvChoices(gpu.capabilities).map(({ splitK, subgroups }) => ({
              label: `${splitK > 1 ? ` split-K ${splitK}` : ''}${subgroups ? ' subgroups' : ''}`, matmul: linear, splitK, subgroups,
            }))
          : [{ label: '', matmul: linear, splitK: 1, subgroups: false }, { label: ' tiled', matmul: linearTiled, splitK: 1, subgroups: false }];
        for (const { label, matmul, splitK, subgroups } of variants) {
          const seconds = await timeDispatches(gpu, (r) => matmul(r, { x, weights: matrix, y, m, splitK, subgroups }), repeats);
          const bytes = layout.dataBytes + layout.scaleBytes + m * k * 4 + m * n * 4;
          const gbPerSecond = bytes / seconds / 1e9;
          const kernel = `linear ${formatName} M=${m}${label}`;
          rows.push({ kernel, shape: name, ms: seconds * 1000, gbPerSecond, ofCopy: gbPerSecond / copyGBs, gflops: (2 * m * n * k) / seconds / 1e9 });
        }
        x.destroy();
        y.destroy();
      }
      destroyGpuMatrix(matrix);
    }
  }
  return rows;
}

/** Decode attention (one query row per head over a long paged KV cache, split-KV 16) in GB/s of K and V read. */
export async function benchAttention(gpu: GpuContext, copyGBs: number): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const { heads, headDim, positions } of [{ heads: 32, headDim: 128, positions: 2048 }, { heads: 16, headDim: 64, positions: 2048 }]) {
    const kvDim = heads * headDim;
    const pages = Math.ceil(positions / KV_PAGE_TOKENS);
    const kCache = gpu.createBuffer('k', pages * KV_PAGE_TOKENS * kvDim * 4);
    const vCache = gpu.createBuffer('v', pages * KV_PAGE_TOKENS * kvDim * 4);
    const q = gpu.createBuffer('q', kvDim * 4);
    const out = gpu.createBuffer('out', kvDim * 4);
    const splits = 16;
    const partials = gpu.createBuffer('partials', attentionPartialBytes(1, heads, headDim, splits));
    const { data, ...layout } = packBatchTables([[0, positions - 1, 0]], [{ pages: Array.from({ length: pages }, (_, i) => i), kvLength: positions, documents: [{ start: 0, end: positions, visibleMask: 0 }] }]);
    const tables = gpu.upload('tables', data);
    const seconds = await timeDispatches(gpu, (r) => attention(r, { q, tables, layout, kCache, vCache, partials, out, rowCount: 1, heads, kvHeads: heads, headDim, splits }), 5);
    const bytes = 2 * positions * kvDim * 4;
    const gbPerSecond = bytes / seconds / 1e9;
    rows.push({ kernel: `attention decode, split-KV ${splits}`, shape: `${heads}×${headDim}, ${positions} positions`, ms: seconds * 1000, gbPerSecond, ofCopy: gbPerSecond / copyGBs });
    for (const buffer of [kCache, vCache, q, out, partials, tables]) buffer.destroy();
  }
  return rows;
}

/**
 * The sampler over Tri-7B's vocabulary (128256 logits), greedy and with top-k 40 + top-p 0.9 (65
 * reductions over the vocabulary), with workgroup reductions and, where the adapter has subgroups, by
 * subgroups first. GB/s counts every pass over the logits: 1 greedy; 67 filtered (the maximum, 32 top-k
 * bisection steps, the mass, 32 top-p steps, the kept total).
 */
export async function benchSampler(gpu: GpuContext, copyGBs: number): Promise<BenchRow[]> {
  const vocab = 128256;
  const logits = gpu.upload('logits', Float32Array.from({ length: vocab }, (_, i) => 6 * Math.sin(i * 0.7 + Math.cos(i))));
  const seen = gpu.createBuffer('seen', Math.ceil(vocab / 32) * 4);
  const counts = gpu.createBuffer('counts', 16);
  const result = gpu.createBuffer('result', 16);
  const rowTable = gpu.createBuffer('rows', SAMPLE_ROW_BYTES);
  const rows: BenchRow[] = [];
  const cases = [['greedy', samplingConfig({}), 1], ['top-k 40, top-p 0.9', samplingConfig({ temperature: 0.8, topK: 40, topP: 0.9 }), 67]] as const;
  for (const [name, config, passes] of cases) {
    for (const subgroups of gpu.capabilities.subgroups ? [false, true] : [false]) {
      const seconds = await timeDispatches(gpu, (r) => sample(r, {
        logits, seen, counts, result, rowTable, vocab, subgroups, rows: [{ config, step: 0, offset: 0, resultIndex: 0, seenStart: 0, countsStart: 0 }],
      }), 5);
      const gbPerSecond = (passes * vocab * 4) / seconds / 1e9;
      rows.push({ kernel: `sample ${name}${subgroups ? ' subgroups' : ''}`, shape: `vocab ${vocab}`, ms: seconds * 1000, gbPerSecond, ofCopy: gbPerSecond / copyGBs });
    }
  }
  for (const buffer of [logits, seen, counts, result, rowTable]) buffer.destroy();
  return rows;
}

export function formatBenchTable(rows: BenchRow[], adapter: string): string {
  const lines = [`adapter: ${adapter}`, '| kernel | shape | ms | GB/s | of copy | GFLOP/s |', '|---|---|---:|---:|---:|---:|'];
  for (const row of rows) lines.push(`| ${row.kernel} | ${row.shape} | ${row.ms.toFixed(2)} | ${row.gbPerSecond.toFixed(2)} | ${row.ofCopy.toFixed(2)} | ${row.gflops?.toFixed(2) ?? ''} |`);
  return lines.join('\n');
}
