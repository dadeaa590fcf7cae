// The benchmark page: the kernel table of bench/kernel-bench.ts on this browser's GPU, then end-to-end
// decode speed on the bundled tri-tiny; and the runtime table (several sequences, prefix sharing, the
// roofline on a 111M random Llama). `?run` starts the first at once (`?full` adds the M=128 rows),
// `?runtime` the second; the page then sets body[data-state=done] (the Node bench runners use this).
import { benchAttention, benchCopy, benchLinear, type BenchRow } from '../bench/kernel-bench.ts';
import { decodeRow, runtimeRows } from '../bench/runtime-bench.ts';
import { GpuContext, TriEngine, type WeightFormatOptions } from '../src/index.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const runButton = $<HTMLButtonElement>('run');
const quick = $<HTMLInputElement>('quick');

function addRow(table: string, cells: string[]): void {
  const row = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    td.textContent = cell;
    row.append(td);
  }
  $(table).querySelector('tbody')!.append(row);
}

const showKernelRows = (rows: BenchRow[]) => {
  for (const row of rows) addRow('results', [row.kernel, row.shape, row.ms.toFixed(2), row.gbPerSecond.toFixed(2), row.ofCopy.toFixed(2), row.gflops?.toFixed(2) ?? '']);
};

async function decodeSpeed(weights: WeightFormatOptions): Promise<string[]> {
  const engine = await TriEngine.load(new URL('models/tri-tiny/', location.href).href, { weights });
  try {
    return await decodeRow(engine);
  } finally {
    engine.dispose();
  }
}

async function run(): Promise<void> {
  runButton.disabled = true;
  document.body.dataset.state = 'busy';
  for (const table of ['results', 'decode']) $(table).querySelector('tbody')!.replaceChildren();
  const gpu = await GpuContext.create();
  try {
    $('adapter').textContent = `Adapter: ${gpu.capabilities.adapterDescription}; shader-f16 ${gpu.capabilities.shaderF16 ? 'yes' : 'no'}, subgroups ${gpu.capabilities.subgroups ? 'yes' : 'no'}`;
    status.textContent = 'Measuring copy bandwidth…';
    const copy = await benchCopy(gpu);
    showKernelRows(copy);
    const copyGBs = Math.max(...copy.map((row) => row.gbPerSecond));
    status.textContent = 'Measuring linear kernels…';
    showKernelRows(await benchLinear(gpu, copyGBs, [['q4', { format: 'q4' }], ['f16', { format: 'f16' }]], undefined, quick.checked ? [1] : [1, 128]));
    showKernelRows(await benchAttention(gpu, copyGBs));
  } finally {
    gpu.destroy();
  }
  for (const weights of [{ format: 'f32' }, { format: 'q4' }] as const) {
    status.textContent = `Decoding with ${weights.format} weights…`;
    addRow('decode', await decodeSpeed(weights));
  }
  status.textContent = 'Done.';
  document.body.dataset.state = 'done';
  runButton.disabled = false;
}

const runtimeButton = $<HTMLButtonElement>('run-runtime');
const query = new URLSearchParams(location.search);

async function runRuntime(): Promise<void> {
  runtimeButton.disabled = true;
  document.body.dataset.state = 'busy';
  $('runtime').querySelector('tbody')!.replaceChildren();
  status.textContent = 'Measuring copy bandwidth…';
  const gpu = await GpuContext.create();
  const copyGBs = Math.max(...(await benchCopy(gpu)).map((row) => row.gbPerSecond));
  gpu.destroy();
  status.textContent = 'Measuring the runtime…';
  const randomModel = query.get('randomModel');
  const urls = { 'tri-tiny': new URL('models/tri-tiny/', location.href).href, 'random-111m': randomModel ? new URL(randomModel, location.href).href : '' };
  const rows = await runtimeRows(async (model, weights, options) => {
    if (!urls[model]) throw new Error('give the random model folder with ?randomModel=URL (npm run bench -- runtime writes it)');
    return TriEngine.load(urls[model], { weights, ...options });
  }, copyGBs);
  for (const row of rows) addRow('runtime', row);
  status.textContent = 'Done.';
  document.body.dataset.state = 'done';
  runtimeButton.disabled = false;
}

const reportFailure = (error: Error) => {
  status.textContent = `Benchmark failed: ${error.message}`;
  document.body.dataset.state = 'error';
};
runButton.addEventListener('click', () => run().catch(reportFailure));
runtimeButton.addEventListener('click', () => runRuntime().catch(reportFailure));
if (!('gpu' in navigator)) {
  status.textContent = 'This browser has no WebGPU. Use a recent Chrome or Edge (113+), Safari 26+, or Firefox 141+ on Windows.';
  document.body.dataset.state = 'error';
} else {
  status.textContent = 'Ready.';
  runButton.disabled = false;
  runtimeButton.disabled = false;
  if (query.has('full')) quick.checked = false;
  if (query.has('run')) runButton.click();
  else if (query.has('runtime')) runtimeButton.click();
}
