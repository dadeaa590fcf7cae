// `npm run bench -- synthetic`: decode and prefill of a synthetic model with Tri-7B's exact shapes (q4,
// f16 KV cache), weights made on the GPU from a seed, in Node (Dawn), against the copy-kernel roofline of
// the same run. Not a test: it prints, it asserts nothing. On a CPU adapter (SwiftShader) it times less
// (see syntheticOptionsFor); BENCH_SYNTHETIC_FULL=1 runs the full suite there anyway.
// Measured 2026-12-02 with the same code through the portable bundle (SwiftShader on 2 cores, best copy
// 1.05 GB/s): setup 82 s for 5.96 GiB of buffers; decode 0.045 / 0.038 / 0.033 tok/s at positions 128 /
// 1024 / 4096 = 0.17 / 0.16 / 0.19 of the roofline; 228 dispatches per token; a 16-token prefill 0.1 tok/s
// (printed to one decimal then).
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { benchCopy, bestCopyGBs } from './kernel-bench.ts';
import { syntheticOptionsFor } from './suite.ts';
import { syntheticRows } from './synthetic-bench.ts';

const gpu = await GpuContext.create(await getNodeGpu());
const copyGBs = bestCopyGBs(await benchCopy(gpu));
const slow = gpu.capabilities.memoryBudgetBytes !== undefined && !process.env.BENCH_SYNTHETIC_FULL; // a CPU adapter
const rows = await syntheticRows(gpu, copyGBs, syntheticOptionsFor(false, slow));
gpu.destroy();
console.log(`## Synthetic Tri-7B (Node, ${gpu.capabilities.adapterDescription}; best copy ${copyGBs.toFixed(2)} GB/s)\n`);
console.log(['| measure | value | note |', '|---|---:|---|', ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n'));

describe('synthetic', () => {
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
