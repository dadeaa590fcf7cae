// `npm run bench -- runtime`: decode tok/s with 1, 4 and 16 sequences, prefill tok/s and prefix sharing on
// tri-tiny, and decode on a 111M random Llama (bench/random-llama.ts) as a fraction of the roofline, in Node
// and then in Chromium (demo/bench.html?runtime). Not a test: it prints, it asserts nothing.
import { fileURLToPath } from 'node:url';
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import { TriEngine } from '../src/runtime/engine.ts';
import { benchPageReport } from './bench-page.ts';
import { benchCopy, bestCopyGBs } from './kernel-bench.ts';
import { RANDOM_LLAMA_DIR, ensureRandomLlama } from './random-llama.ts';
import { runtimeRows } from './runtime-bench.ts';

ensureRandomLlama();
const folders = { 'tri-tiny': fileURLToPath(new URL('../public/models/tri-tiny', import.meta.url)), 'random-111m': RANDOM_LLAMA_DIR };
const gpu = await GpuContext.create(await getNodeGpu());
const copyGBs = bestCopyGBs(await benchCopy(gpu));
gpu.destroy();
const rows = await runtimeRows(async (model, weights, options) => TriEngine.load(new NodeModelFiles(folders[model]), { gpu: await getNodeGpu(), weights, ...options }), copyGBs);
console.log(`## Node (Dawn), copy ${copyGBs.toFixed(2)} GB/s\n| measure | value | note |\n|---|---|---|\n${rows.map((row) => `| ${row.join(' | ')} |`).join('\n')}`);
console.log(`## Chromium (benchmark page)\n${await benchPageReport(`runtime&randomModel=${encodeURIComponent(`/@fs${RANDOM_LLAMA_DIR}`)}`, ['runtime'])}`);

describe('runtime', () => {
  // vitest bench needs a bench; the tables above are the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
