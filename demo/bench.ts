// The benchmark page: the suite of bench/suite.ts (the same one `npx tri-webgpu bench` and the portable
// bundle print) on this browser's GPU, shown as it arrives: adapter, the kernel table with a plot of each
// kernel's fraction of the copy bandwidth, synthetic Tri-7B (and optionally a named model) decode and
// prefill against the roofline with a plot by context position, and forced-decoding agreement on the
// bundled tri-tiny. A second section runs the runtime table (several sequences, prefix sharing, a 111M
// random Llama). `?run` starts the suite at once (`&tiny`: small shapes, for tests; `&model=` a model to
// measure too; `&noSynthetic`: kernels and correctness only), `?runtime` the second; the page then sets
// body[data-state=done] (the Node bench runners use this).
import { agreementRows } from '../bench/correctness.ts';
import { benchCopy, type BenchRow, bestCopyGBs } from '../bench/kernel-bench.ts';
import { runtimeRows } from '../bench/runtime-bench.ts';
import { runBenchSuite, type SuiteResult, suiteFailed } from '../bench/suite.ts';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { CachedModelFiles, GpuContext, HttpModelFiles, type ModelFiles, TriEngine } from '../src/index.ts';
import { modelFromAddress } from './chat/engine-host.ts';
import { NO_WEBGPU, downloadJson } from './page-tools.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const runButton = $<HTMLButtonElement>('run');
const tinyBox = $<HTMLInputElement>('tiny');
const modelInput = $<HTMLInputElement>('model');
const query = new URLSearchParams(location.search);

function addRow(table: string, cells: readonly string[]): void {
  const row = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    td.textContent = cell;
    row.append(td);
  }
  $(table).querySelector('tbody')!.append(row);
}

const kernelCells = (row: BenchRow) => [row.kernel, row.shape, row.ms.toFixed(2), row.gbPerSecond.toFixed(2), row.ofCopy.toFixed(2), row.gflops?.toFixed(2) ?? ''];

function showAdapter(gpu: GpuContext): void {
  const { adapterDescription, shaderF16, subgroups, timestampQuery, maxBufferSize, maxStorageBufferBindingSize } = gpu.capabilities;
  const yes = (value: boolean) => (value ? 'yes' : 'no');
  $('adapter').textContent = `Adapter: ${adapterDescription}; shader-f16 ${yes(shaderF16)}, subgroups ${yes(subgroups)}, timestamp-query ${yes(timestampQuery)}; ` +
    `largest buffer ${(maxBufferSize / 2 ** 30).toFixed(2)} GiB, largest storage binding ${(maxStorageBufferBindingSize / 2 ** 30).toFixed(2)} GiB`;
}

const chartWidth = (chart: HTMLElement) => Math.min(chart.clientWidth || 600, 800);
const SERIES_COLOURS = ['#1a5fd0', '#d0571a', '#1a9d5f', '#8a1ad0', '#c0a000', '#d01a6e', '#555'];

/**
 * Each matrix kernel's fraction of the copy bandwidth, one point per shape and one series per kernel
 * variant (q4/f16, each split-K), so the variant the engine should pick stands out per shape.
 */
function plotKernels(rows: readonly BenchRow[]): void {
  const linear = rows.filter((row) => row.kernel.startsWith('linear') && / M=1( |$)/.test(row.kernel)); // decode rows only, not M=128
  const shapes = [...new Set(linear.map((row) => row.shape))];
  const variants = [...new Set(linear.map((row) => row.kernel))];
  const chart = $('kernel-chart');
  chart.replaceChildren();
  if (shapes.length === 0) return;
  const data: uPlot.AlignedData = [
    shapes.map((_, i) => i),
    ...variants.map((variant) => shapes.map((shape) => linear.find((row) => row.kernel === variant && row.shape === shape)?.ofCopy ?? null)),
  ];
  new uPlot({
    title: 'Decode GEMV bandwidth, fraction of the copy kernel', width: chartWidth(chart), height: 280,
    scales: { x: { time: false, range: [-0.5, shapes.length - 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    axes: [{ label: 'weight matrix', splits: () => shapes.map((_, i) => i), values: (_u, splits) => splits.map((i) => shapes[i]?.split(' ')[0] ?? '') }, { label: 'of copy' }],
    series: [{ label: 'shape', value: (_u, i) => (i === null ? '' : shapes[i] ?? '') }, ...variants.map((variant, i) => ({
      label: variant.replace('linear ', '').replace(' M=1', ''), stroke: SERIES_COLOURS[i % SERIES_COLOURS.length]!, width: 0, points: { size: 9, fill: SERIES_COLOURS[i % SERIES_COLOURS.length]! },
    }))],
  }, data, chart);
}

/** Decode tok/s against context position, beside the roofline, per model measured (log axes). */
function plotDecode(decode: SuiteResult['decode']): void {
  const chart = $('decode-chart');
  chart.replaceChildren();
  const measured = decode.filter(({ points }) => points.length > 0);
  if (measured.length === 0) return;
  const positions = [...new Set(measured.flatMap(({ points }) => points.map((p) => p.position)))].sort((a, b) => a - b);
  const at = (points: (typeof measured)[number]['points'], key: 'tokensPerSecond' | 'rooflineTokensPerSecond') => positions.map((position) => points.find((p) => p.position === position)?.[key] ?? null);
  const data: uPlot.AlignedData = [positions, ...measured.flatMap(({ points }) => [at(points, 'tokensPerSecond'), at(points, 'rooflineTokensPerSecond')])];
  new uPlot({
    title: 'Decode tok/s by context position', width: chartWidth(chart), height: 260,
    scales: { x: { time: false, distr: 3 }, y: { distr: 3 } }, // log axes: positions 128–4096, tok/s over decades
    axes: [{ label: 'position' }, { label: 'tok/s' }],
    series: [{ label: 'position' }, ...measured.flatMap(({ model }, i) => {
      const stroke = SERIES_COLOURS[i % SERIES_COLOURS.length]!;
      return [{ label: `${model} measured`, stroke, width: 2, points: { size: 7 } }, { label: `${model} roofline`, stroke, dash: [6, 4] }];
    })],
  }, data, chart);
}

let lastSuite: SuiteResult | undefined;

/**
 * Runs one section: its button off and its tables emptied while it measures; then "Done.", the results
 * kept, and the button back; or the error shown, and the button back so the run can be tried again.
 */
async function runSection(button: HTMLButtonElement, tables: string[], measure: () => Promise<string | void>): Promise<void> {
  button.disabled = true;
  document.body.dataset.state = 'busy';
  for (const table of tables) $(table).querySelector('tbody')!.replaceChildren();
  try {
    status.textContent = (await measure()) ?? 'Done.';
    finished();
    document.body.dataset.state = 'done';
  } catch (error) {
    status.textContent = `Benchmark failed: ${(error as Error).message}`;
    document.body.dataset.state = 'error';
  } finally {
    button.disabled = false;
  }
}

/** The model named in the field, as cached files (a 4 GB model downloads once), or undefined when empty. */
async function namedModel(): Promise<{ name: string; files: ModelFiles } | undefined> {
  const address = modelInput.value.trim();
  if (!address) return undefined;
  const source = modelFromAddress(address);
  if (source?.kind !== 'url') throw new Error(`"${address}" is neither a Hugging Face repo (owner/name) nor a folder URL`);
  return { name: source.name, files: await CachedModelFiles.open(new HttpModelFiles(source.url)) };
}

/** Returns a warning for the status line when this GPU computed wrong results. */
async function measureSuite(): Promise<string | void> {
  lastSuite = undefined;
  for (const chart of ['kernel-chart', 'decode-chart']) $(chart).replaceChildren();
  const gpu = await GpuContext.create();
  try {
    showAdapter(gpu);
    const model = await namedModel();
    status.textContent = 'Measuring copy bandwidth and the kernels…';
    lastSuite = await runBenchSuite(gpu, {
      tiny: tinyBox.checked,
      synthetic: !query.has('noSynthetic'),
      correctnessModel: new HttpModelFiles(new URL('models/tri-tiny/', location.href).href),
      ...(model ? { model } : {}),
      print: (text) => {
        if (text.startsWith('## ')) status.textContent = `Measuring: ${text.slice(3).split('\n')[0]}…`;
      },
      onKernels: (rows) => {
        for (const row of rows) addRow('kernels', kernelCells(row));
        plotKernels(rows);
        status.textContent = 'Making the synthetic model on the GPU and measuring it…';
      },
      onModelRow: (row) => addRow('models', row),
      onHostRows: (rows) => rows.forEach((row) => addRow('host', row)),
    });
    plotDecode(lastSuite.decode);
    for (const row of agreementRows(lastSuite.agreement)) addRow('correctness', row);
  } finally {
    gpu.destroy();
  }
  if (suiteFailed(lastSuite)) return 'Done, but this GPU computes wrong results: f32 disagrees with the CPU reference (see Correctness).';
}

const runtimeButton = $<HTMLButtonElement>('run-runtime');

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

// ---- Results: the tables and the suite's JSON (the CLI's shape), downloaded or kept in localStorage (the last five runs) ----

const HISTORY_KEY = 'tri-webgpu.bench-runs';
interface StoredRun {
  at: string;
  adapter: string;
  tables: Record<string, string[][]>;
  /** The suite's result, as `npx tri-webgpu bench --json` writes it. */
  suite?: SuiteResult;
}

function currentResults(): StoredRun {
  const tables: Record<string, string[][]> = {};
  for (const id of ['kernels', 'host', 'models', 'correctness', 'runtime']) {
    const rows = [...$(id).querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((cell) => cell.textContent ?? ''));
    if (rows.length > 0) tables[id] = rows;
  }
  return { at: new Date().toISOString(), adapter: $('adapter').textContent ?? '', tables, ...(lastSuite ? { suite: lastSuite } : {}) };
}

function storedRuns(): StoredRun[] {
  try {
    return JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]') as StoredRun[];
  } catch {
    return [];
  }
}

const downloadRun = (run: StoredRun) => downloadJson(`tri-webgpu-bench-${run.at.replace(/[:.]/g, '-')}.json`, run);

function showHistory(): void {
  const runs = storedRuns();
  $('history').replaceChildren(...runs.map((run) => {
    const item = document.createElement('li');
    const button = Object.assign(document.createElement('button'), { type: 'button', textContent: `${new Date(run.at).toLocaleString()} · ${Object.keys(run.tables).join(', ')}` });
    button.addEventListener('click', () => downloadRun(run));
    item.append(button);
    return item;
  }));
}

/** A run finished: keep it, and let it be downloaded. */
function finished(): void {
  const run = currentResults();
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify([run, ...storedRuns()].slice(0, 5)));
  } catch {
    // storage full or disabled: the run can still be downloaded
  }
  showHistory();
  $<HTMLButtonElement>('download').disabled = false;
}
$('download').addEventListener('click', () => downloadRun(currentResults()));
showHistory();

runButton.addEventListener('click', () => void runSection(runButton, ['kernels', 'host', 'models', 'correctness'], measureSuite));
runtimeButton.addEventListener('click', () => void runSection(runtimeButton, ['runtime'], measureRuntime));
if (!('gpu' in navigator)) {
  status.textContent = NO_WEBGPU;
  document.body.dataset.state = 'error';
} else {
  status.textContent = 'Ready.';
  runButton.disabled = false;
  runtimeButton.disabled = false;
  tinyBox.checked = query.has('tiny');
  modelInput.value = query.get('model') ?? '';
  if (query.has('run')) runButton.click();
  else if (query.has('runtime')) runtimeButton.click();
}
