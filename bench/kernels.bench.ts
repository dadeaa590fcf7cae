// `npm run bench`: GB/s of the f32 matmul at a few shapes, as a ratio to a plain copy kernel measured
// in the same run on the same adapter (DESIGN.md §6). Not a test: it prints, it asserts nothing.
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { CommandRecorder } from '../src/gpu/recorder.ts';
import { matmul } from '../src/ops/matmul.ts';
import copyCode from './copy.wgsl?raw';

const gpu = await GpuContext.create(getNodeGpu());
const copyKernel = { name: 'copy', code: copyCode, params: { count: 'u32' } } as const;
const REPEATS = 5;

async function timeDispatches(record: (recorder: CommandRecorder) => void): Promise<number> {
  const recorder = new CommandRecorder(gpu);
  for (let i = 0; i < REPEATS; i++) record(recorder);
  const start = performance.now();
  recorder.submit();
  await gpu.device.queue.onSubmittedWorkDone();
  gpu.checkHealthy(); // a failed dispatch must not pass as a fast one
  return (performance.now() - start) / 1000 / REPEATS;
}

const results: string[] = [];
const copyBytes = 64 << 20;
const source = gpu.createBuffer('copy.src', copyBytes);
const target = gpu.createBuffer('copy.dst', copyBytes);
const copyOnce = (r: CommandRecorder) => r.dispatch(copyKernel, { count: copyBytes / 16 }, [source, target], Math.ceil(copyBytes / 16 / 256));
await timeDispatches(copyOnce);
const copySeconds = await timeDispatches(copyOnce);
const copyGBs = (2 * copyBytes) / copySeconds / 1e9;
results.push(`copy 64 MiB: ${copyGBs.toFixed(2)} GB/s (read + write) on ${gpu.capabilities.adapterDescription}`);

for (const [label, n, k, m] of [['4096×256 (tri-tiny lm_head)', 4096, 256, 1], ['4096×4096 M=1', 4096, 4096, 1], ['11008×4096 M=1', 11008, 4096, 1], ['4096×256 M=128 (tri-tiny prefill chunk)', 4096, 256, 128]] as const) {
  const w = gpu.createBuffer('w', n * k * 4);
  const x = gpu.createBuffer('x', m * k * 4);
  const y = gpu.createBuffer('y', m * n * 4);
  const once = (r: CommandRecorder) => matmul(r, { x, w, y, m, n, k });
  await timeDispatches(once);
  const seconds = await timeDispatches(once);
  const bytes = (n * k + m * k + m * n) * 4;
  const gbs = bytes / seconds / 1e9;
  results.push(`matmul f32 ${label}: ${(seconds * 1000).toFixed(2)} ms, ${gbs.toFixed(2)} GB/s, ${(gbs / copyGBs).toFixed(2)} of copy`);
  w.destroy();
  x.destroy();
  y.destroy();
}

console.log(results.join('\n'));

describe('kernels', () => {
  // vitest bench needs a bench; the measurements above are the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
