// The benchmark page: the kernel table of bench/kernel-bench.ts on this browser's GPU, then end-to-end
// decode speed on the bundled tri-tiny; and the runtime table (several sequences, prefix sharing, the
// roofline on a 111M random Llama); and the synthetic Tri-7B (weights made on the GPU, no download).
// `?run` starts the first at once (`?full` adds the M=128 rows), `?runtime` the second, `?synthetic` the
// third (`&syntheticConfig=tiny` with a small config, for tests); the page then sets body[data-state=done]
// (the Node bench runners use this).
import { benchAttention, benchCopy, benchLinear, type BenchRow } from '../bench/kernel-bench.ts';
import { decodeRow, runtimeRows } from '../bench/runtime-bench.ts';
import { TINY_SYNTHETIC_CONFIG } from '../bench/suite.ts';
import { type DecodePoint, type SyntheticOptions, syntheticRows } from '../bench/synthetic-bench.ts';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
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

function showAdapter(gpu: GpuContext): void {
  const { adapterDescription, shaderF16, subgroups, timestampQuery, maxBufferSize, maxStorageBufferBindingSize } = gpu.capabilities;
  const yes = (value: boolean) => (value ? 'yes' : 'no');
  $('adapter').textContent = `Adapter: ${adapterDescription}; shader-f16 ${yes(shaderF16)}, subgroups ${yes(subgroups)}, timestamp-query ${yes(timestampQuery)}; ` +
    `largest buffer ${(maxBufferSize / 2 ** 30).toFixed(2)} GiB, largest storage binding ${(maxStorageBufferBindingSize / 2 ** 30).toFixed(2)} GiB`;
}

async function run(): Promise<void> {
  runButton.disabled = true;
  document.body.dataset.state = 'busy';
  for (const table of ['results', 'decode']) $(table).querySelector('tbody')!.replaceChildren();
  const gpu = await GpuContext.create();
  try {
    showAdapter(gpu);
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
  finished();
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
    return TriEngine.load(urls[model], { weights, ...options });
  }, copyGBs, Boolean(randomModel));
  for (const row of rows) addRow('runtime', row);
  status.textContent = 'Done.';
  finished();
  document.body.dataset.state = 'done';
  runtimeButton.disabled = false;
}

const syntheticButton = $<HTMLButtonElement>('run-synthetic');

/** Decode tok/s against context position, beside the roofline (uPlot: small, canvas, no dependencies). */
function plotDecode(points: DecodePoint[]): void {
  const chart = $('synthetic-chart');
  chart.replaceChildren();
  const data: uPlot.AlignedData = [points.map((p) => p.position), points.map((p) => p.tokensPerSecond), points.map((p) => p.rooflineTokensPerSecond)];
  new uPlot({
    title: 'Decode tok/s by context position', width: Math.min(chart.clientWidth || 600, 800), height: 260,
    scales: { x: { time: false, distr: 3 }, y: { distr: 3 } }, // log axes: positions 128–4096, tok/s over decades
    axes: [{ label: 'position' }, { label: 'tok/s' }],
    series: [{ label: 'position' }, { label: 'measured', stroke: '#1a5fd0', width: 2, points: { size: 7 } }, { label: 'roofline', stroke: '#888', dash: [6, 4] }],
  }, data, chart);
}

async function runSynthetic(): Promise<void> {
  syntheticButton.disabled = true;
  document.body.dataset.state = 'busy';
  $('synthetic').querySelector('tbody')!.replaceChildren();
  status.textContent = 'Measuring copy bandwidth…';
  const gpu = await GpuContext.create();
  try {
    showAdapter(gpu);
    const copyGBs = Math.max(...(await benchCopy(gpu)).map((row) => row.gbPerSecond));
    // A software GPU (SwiftShader) takes ~16 s per Tri-7B token: fewer tokens there, and a short prefill.
    const slow = gpu.capabilities.memoryBudgetBytes !== undefined;
    const options: SyntheticOptions = query.get('syntheticConfig') === 'tiny'
      ? { config: TINY_SYNTHETIC_CONFIG, weights: { format: 'q4' }, decodePositions: [32, 128], prefillLengths: [16, 64], decodeTokens: 4 }
      : { weights: { format: 'q4' }, decodePositions: [128, 1024, 4096], prefillLengths: slow ? [16] : [128, 512, 2048], decodeTokens: slow ? 2 : 16 };
    status.textContent = 'Making the synthetic model on the GPU and measuring it…';
    const points: DecodePoint[] = [];
    for (const row of await syntheticRows(gpu, copyGBs, options, undefined, points)) addRow('synthetic', row);
    plotDecode(points);
  } finally {
    gpu.destroy();
  }
  status.textContent = 'Done.';
  finished();
  document.body.dataset.state = 'done';
  syntheticButton.disabled = false;
}

// ---- Results: the tables as JSON, downloaded or kept in localStorage (the last five runs) ----

const HISTORY_KEY = 'tri-webgpu.bench-runs';
interface StoredRun {
  at: string;
  adapter: string;
  tables: Record<string, string[][]>;
}

function currentResults(): StoredRun {
  const tables: Record<string, string[][]> = {};
  for (const id of ['results', 'decode', 'runtime', 'synthetic']) {
    const rows = [...$(id).querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((cell) => cell.textContent ?? ''));
    if (rows.length > 0) tables[id] = rows;
  }
  return { at: new Date().toISOString(), adapter: $('adapter').textContent ?? '', tables };
}

function storedRuns(): StoredRun[] {
  try {
    return JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]') as StoredRun[];
  } catch {
    return [];
  }
}

function downloadJson(run: StoredRun): void {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([`${JSON.stringify(run, null, 2)}\n`], { type: 'application/json' }));
  link.download = `tri-webgpu-bench-${run.at.replace(/[:.]/g, '-')}.json`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function showHistory(): void {
  const runs = storedRuns();
  $('history').replaceChildren(...runs.map((run) => {
    const item = document.createElement('li');
    const button = Object.assign(document.createElement('button'), { type: 'button', textContent: `${new Date(run.at).toLocaleString()} · ${Object.keys(run.tables).join(', ')}` });
    button.addEventListener('click', () => downloadJson(run));
    item.append(button);
    return item;
  }));
}

/** A run finished: keep it, and let it be downloaded. */
function finished(): void {
  const run = currentResults();
  localStorage.setItem(HISTORY_KEY, JSON.stringify([run, ...storedRuns()].slice(0, 5)));
  showHistory();
  $<HTMLButtonElement>('download').disabled = false;
}
$('download').addEventListener('click', () => downloadJson(currentResults()));
showHistory();

const reportFailure = (button: HTMLButtonElement) => (error: Error) => {
  status.textContent = `Benchmark failed: ${error.message}`;
  document.body.dataset.state = 'error';
  button.disabled = false; // a failed run can be tried again
};
runButton.addEventListener('click', () => run().catch(reportFailure(runButton)));
runtimeButton.addEventListener('click', () => runRuntime().catch(reportFailure(runtimeButton)));
syntheticButton.addEventListener('click', () => runSynthetic().catch(reportFailure(syntheticButton)));
if (!('gpu' in navigator)) {
  status.textContent = 'This browser has no WebGPU. Use a recent Chrome or Edge (113+), Safari 26+, or Firefox 141+ on Windows.';
  document.body.dataset.state = 'error';
} else {
  status.textContent = 'Ready.';
  runButton.disabled = false;
  runtimeButton.disabled = false;
  syntheticButton.disabled = false;
  if (query.has('full')) quick.checked = false;
  if (query.has('run')) runButton.click();
  else if (query.has('runtime')) runtimeButton.click();
  else if (query.has('synthetic')) syntheticButton.click();
}
