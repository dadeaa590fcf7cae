// `npm run bench -- host`: the host (JS) time of one decode step for a graph with Tri-7B's structure
// (bench/host-cost.ts), in Node (Dawn). Not a test: it prints, it asserts nothing. Seconds.
// Measured 2026-12-03 on 2 cores (SwiftShader), 195 dispatches per step: 9.4 ms (1 sequence) and 9.0 ms
// (4 sequences) with a bind group made per dispatch; 5.1 and 4.4 ms with bind groups reused. The same
// graph in Chromium (hostCostRows through the Vite dev server; its clock has 0.1 ms steps): 3.1 / 3.0 ms
// before, 1.7 / 1.9 ms after.
// 2026-12-04, steps queued as the scheduler queues them (GPU sampling, 2 in flight), 196 dispatches:
// Node 2.2–4.0 ms per step over several runs (the WebGPU calls alone 0.44–0.50 ms; a CPU profile put
// 18–19% of the host's time in the garbage collector), Chromium 1.0–2.6 ms (the calls alone 0.1–0.4 ms).
// 2026-12-06, decode layers replayed (GpuLlama.replayDecodeLayers), same run each: Node 3.4–4.3 → 1.3–1.4
// ms (calls alone 0.6–0.9 ms), Chromium 1.5–2.0 → 0.3–0.4 ms (calls alone 0.2 ms), 1 and 4 sequences.
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { benchPageReport } from './bench-page.ts';
import { hostCostRows } from './host-cost.ts';

const gpu = await GpuContext.create(await getNodeGpu());
const rows = await hostCostRows(gpu);
gpu.destroy();
console.log(`## Host cost per decode step (Node, ${gpu.capabilities.adapterDescription})\n| measure | value |\n|---|---|\n${rows.map((row) => `| ${row.join(' | ')} |`).join('\n')}`);
// The same rows in Chromium: the benchmark page's suite at small shapes, without the synthetic model.
console.log(`## Host cost per decode step (Chromium, benchmark page)\n${await benchPageReport('run&tiny&noSynthetic', ['host'])}`);

describe('host', () => {
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
