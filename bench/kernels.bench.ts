// `npm run bench -- kernels`: the kernel table of bench/kernel-bench.ts in Node (Dawn on this machine's
// adapter). Not a test: it prints, it asserts nothing. BENCH_QUICK=1 skips the slow M=128 rows.
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { benchCopy, benchLinear, formatBenchTable } from './kernel-bench.ts';

const gpu = await GpuContext.create(getNodeGpu());
const copy = await benchCopy(gpu);
const copyGBs = Math.max(...copy.map((row) => row.gbPerSecond));
const quick = process.env.BENCH_QUICK === '1';
const linearRows = await benchLinear(gpu, copyGBs, [['q4', { format: 'q4' }], ['f16', { format: 'f16' }]], undefined, quick ? [1] : [1, 128]);
console.log(formatBenchTable([...copy, ...linearRows], gpu.capabilities.adapterDescription));

describe('kernels', () => {
  // vitest bench needs a bench; the table above is the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
