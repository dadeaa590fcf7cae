// The benchmark page: the kernel table of bench/kernel-bench.ts on this browser's GPU, then end-to-end
// decode speed on the bundled tri-tiny; and the runtime table (several sequences, prefix sharing, the
// roofline on a 111M random Llama); and the synthetic Tri-7B (weights made on the GPU, no download).
// `?run` starts the first at once (`?full` adds the M=128 rows), `?runtime` the second, `?synthetic` the
// third (`&syntheticConfig=tiny` with a small config, for tests); the page then sets body[data-state=done]
// (the Node bench runners use this).
import { benchAttention, benchCopy, benchLinear, type BenchRow, bestCopyGBs } from '../bench/kernel-bench.ts';
import { decodeRow, runtimeRows } from '../bench/runtime-bench.ts';
import { syntheticOptionsFor } from '../bench/suite.ts';
import { type DecodePoint, syntheticRows } from '../bench/synthetic-bench.ts';
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

/**
 * Runs one section: its button off and its tables emptied while it measures; then "Done.", the results
 * kept, and the button back; or the error shown, and the button back so the run can be tried again.
 */
async function runSection(button: HTMLButtonElement, tables: string[], measure: () => Promise<void>): Promise<void> {
  button.disabled = true;
  document.body.dataset.state = 'busy';
  for (const table of tables) $(table).querySelector('tbody')!.replaceChildren();
  try {
    await measure();
    status.textContent = 'Done.';
    finished();
    document.body.dataset.state = 'done';
  } catch (error) {
    status.textContent = `Benchmark failed: ${(error as Error).message}`;
    document.body.dataset.state = 'error';
  } finally {
    button.disabled = false;
  }
}

async function measureKernels(): Promise<void> {
  const gpu = await GpuContext.create();
  try {
    showAdapter(gpu);
    status.textContent = 'Measuring copy bandwidth…';
    const copy = await benchCopy(gpu);
    showKernelRows(copy);
    const copyGBs = bestCopyGBs(copy);
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
}

const runtimeButton = $<HTMLButtonElement>('run-runtime');
const query = new URLSearchParams(location.search);

async function measureRuntime(): Promise<void> {
  status.textContent = 'Measuring copy bandwidth…';
  const gpu = await GpuContext.create();
  const copyGBs = bestCopyGBs(await benchCopy(gpu));
  gpu.destroy();
  status.textContent = 'Measuring the runtime…';
  const randomModel = query.get('randomModel');
  const urls = { 'tri-tiny': new URL('models/tri-tiny/', location.href).href, 'random-111m': randomModel ? new URL(randomModel, location.href).href : '' };
  const rows = await runtimeRows(async (model, weights, options) => {
    return TriEngine.load(urls[model], { weights, ...options });
  }, copyGBs, Boolean(randomModel));
  for (const row of rows) addRow('runtime', row);
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

async function measureSynthetic(): Promise<void> {
  status.textContent = 'Measuring copy bandwidth…';
  const gpu = await GpuContext.create();
  try {
    showAdapter(gpu);
    const copyGBs = bestCopyGBs(await benchCopy(gpu));
    const options = syntheticOptionsFor(query.get('syntheticConfig') === 'tiny', gpu.capabilities.memoryBudgetBytes !== undefined);
    status.textContent = 'Making the synthetic model on the GPU and measuring it…';
    const points: DecodePoint[] = [];
    for (const row of await syntheticRows(gpu, copyGBs, options, undefined, points)) addRow('synthetic', row);
    plotDecode(points);
  } finally {
    gpu.destroy();
  }
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

runButton.addEventListener('click', () => void runSection(runButton, ['results', 'decode'], measureKernels));
runtimeButton.addEventListener('click', () => void runSection(runtimeButton, ['runtime'], measureRuntime));
syntheticButton.addEventListener('click', () => void runSection(syntheticButton, ['synthetic'], measureSynthetic));
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
