// `npm run bench -- kernels`: the kernel table of bench/kernel-bench.ts and tri-tiny decode speed in Node
// (Dawn), then the benchmark page's kernel table and correctness in the system Chromium (demo/bench.html,
// `?run&noSynthetic`), each against the best copy kernel measured in the same run on the same adapter. Not
// a test: it prints, it asserts nothing. BENCH_QUICK=1 skips Node's M=128 (prefill) rows, which take
// minutes on SwiftShader (the page never runs them on a software adapter).
import { fileURLToPath } from 'node:url';
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import { TriEngine } from '../src/runtime/engine.ts';
import { benchPageReport } from './bench-page.ts';
import { benchAttention, benchCopy, benchLinear, benchSampler, bestCopyGBs, formatBenchTable } from './kernel-bench.ts';
import { decodeRow } from './runtime-bench.ts';

const quick = process.env.BENCH_QUICK === '1';
const triTiny = fileURLToPath(new URL('../public/models/tri-tiny', import.meta.url));

async function nodeReport(): Promise<string> {
  const gpu = await GpuContext.create(await getNodeGpu());
  const copy = await benchCopy(gpu);
  const copyGBs = bestCopyGBs(copy);
  const linearRows = await benchLinear(gpu, copyGBs, [['q4', { format: 'q4' }], ['f16', { format: 'f16' }]], undefined, quick ? [1] : [1, 128]);
  const attentionRows = await benchAttention(gpu, copyGBs);
  const samplerRows = await benchSampler(gpu, copyGBs);
  const lines = [formatBenchTable([...copy, ...linearRows, ...attentionRows, ...samplerRows], gpu.capabilities.adapterDescription)];
  gpu.destroy();
  lines.push('', '| weights | prefill tok/s | decode tok/s | dispatches per token |', '|---|---:|---:|---:|');
  for (const format of ['f32', 'q4'] as const) {
    const engine = await TriEngine.load(new NodeModelFiles(triTiny), { gpu: await getNodeGpu(), weights: { format } });
    lines.push(`| ${(await decodeRow(engine)).join(' | ')} |`);
    engine.dispose();
  }
  return lines.join('\n');
}

console.log(`## Node (Dawn)\n${await nodeReport()}`);
console.log(`## Chromium (benchmark page)\n${await benchPageReport('run&noSynthetic', ['kernels', 'correctness'])}`);

describe('kernels', () => {
  // vitest bench needs a bench; the tables above are the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
