// The evaluation page: the cross-lingual multiple-choice evaluation (src/eval/) on this browser's GPU, on the
// bundled sample, Global-MMLU-Lite from the hub, or local files; metrics per subject with 95% intervals,
// a chart, progress with ETA, results as JSON. `?run` starts at once (the test does); `&model=`,
// `&languages=` preset the fields. Model output never reaches the page: only numbers and the data's
// subject names, set as text.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { evaluateCrossLingual, globalMmluLiteUrl, matchRows, parseMcqFile, type CrossLingualReport, type PairMetrics, type Rate } from '../src/eval/index.ts';
import { TriEngine } from '../src/index.ts';
import { modelFromAddress } from './chat/engine-host.ts';
import { NO_WEBGPU, downloadJson } from './page-tools.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const runButton = $<HTMLButtonElement>('run');
const cancelButton = $<HTMLButtonElement>('cancel');
const dataset = $<HTMLSelectElement>('dataset');
const progress = $<HTMLProgressElement>('progress');
const query = new URLSearchParams(location.search);
let report: CrossLingualReport | undefined;
let controller: AbortController | undefined;

dataset.addEventListener('change', () => ($('file-inputs').hidden = dataset.value !== 'files'));

/** The two languages' files: name and bytes. */
async function dataFiles(languages: [string, string]): Promise<[string, ArrayBuffer][]> {
  if (dataset.value === 'files') {
    const files = [$<HTMLInputElement>('source-file').files?.[0], $<HTMLInputElement>('target-file').files?.[0]];
    if (!files[0] || !files[1]) throw new Error('choose a file for each language');
    return Promise.all(files.map(async (file) => [file!.name, await file!.arrayBuffer()] as [string, ArrayBuffer]));
  }
  const urls = dataset.value === 'lite'
    ? languages.map((language) => globalMmluLiteUrl(language))
    : languages.map((language) => new URL(`eval/parallel-mcq-sample/${language}.jsonl`, location.href).href);
  return Promise.all(urls.map(async (url) => {
    const response = await fetch(url, { signal: controller!.signal });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}${response.status === 404 ? ' (no questions for this language here)' : ''}`);
    return [decodeURIComponent(new URL(url).pathname.split('/').slice(-2).join('/')), await response.arrayBuffer()] as [string, ArrayBuffer];
  }));
}

const percent = (rate: Rate) => (rate.value === null ? 'n/a' : `${(100 * rate.value).toFixed(1)}%`);
const withInterval = (rate: Rate) => `${percent(rate)} (${rate.count}/${rate.of})${rate.interval ? ` · 95% ${(100 * rate.interval[0]).toFixed(0)}–${(100 * rate.interval[1]).toFixed(0)}%` : ''}`;

function addRow(subject: string, metrics: PairMetrics): void {
  const row = document.createElement('tr');
  for (const text of [subject, String(metrics.n), withInterval(metrics.sourceAccuracy), withInterval(metrics.targetAccuracy), withInterval(metrics.consistency), withInterval(metrics.agreement)]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  $('metrics').querySelector('tbody')!.append(row);
}

/** Accuracy in both languages and consistency per subject (uPlot: points per subject index). */
function chart(result: CrossLingualReport): void {
  const element = $('chart');
  element.replaceChildren();
  const subjects = Object.keys(result.bySubject);
  const series = (pick: (m: PairMetrics) => Rate) => subjects.map((subject) => pick(result.bySubject[subject]!).value);
  const [source, target] = result.languages;
  new uPlot({
    title: 'By subject', width: Math.min(element.clientWidth || 600, 800), height: 260,
    scales: { x: { time: false, range: [-0.5, subjects.length - 0.5] }, y: { range: [0, 1] } },
    axes: [{ label: 'subject', splits: () => subjects.map((_, i) => i), values: (_u, splits) => splits.map((i) => subjects[i]?.replaceAll('_', ' ') ?? '') }, {}],
    series: [
      { label: 'subject', value: (_u, i) => (i === null ? '' : subjects[i] ?? '') },
      { label: `${source} accuracy`, stroke: '#1a5fd0', width: 0, points: { size: 9, fill: '#1a5fd0' } },
      { label: `${target} accuracy`, stroke: '#d0571a', width: 0, points: { size: 9, fill: '#d0571a' } },
      { label: `consistency ${source}→${target}`, stroke: '#1a9d5f', width: 0, points: { size: 9, fill: '#1a9d5f' } },
    ],
  }, [subjects.map((_, i) => i), series((m) => m.sourceAccuracy), series((m) => m.targetAccuracy), series((m) => m.consistency)], element);
}

async function run(): Promise<void> {
  runButton.disabled = true;
  cancelButton.disabled = false;
  document.body.dataset.state = 'busy';
  $('metrics').querySelector('tbody')!.replaceChildren();
  $('chart').replaceChildren();
  controller = new AbortController();
  let engine: TriEngine | undefined;
  try {
    const languages = $<HTMLInputElement>('languages').value.split(',').map((language) => language.trim()) as [string, string];
    if (languages.length !== 2 || !languages[0] || !languages[1]) throw new Error('give two languages, e.g. en,ko');
    $('source-head').textContent = `${languages[0]} accuracy`;
    $('target-head').textContent = `${languages[1]} accuracy`;
    $('consistency-head').textContent = `consistency ${languages[0]}→${languages[1]}`;
    status.textContent = 'Reading the questions…';
    const [source, target] = await Promise.all((await dataFiles(languages)).map(([name, bytes]) => parseMcqFile(bytes, name)));
    const pairs = matchRows(source!, target!, languages);
    const model = modelFromAddress($<HTMLInputElement>('model').value);
    if (model?.kind !== 'url') throw new Error('the model is neither a Hugging Face repo (owner/name) nor a folder URL');
    status.textContent = `Loading ${model.name}…`;
    engine = await TriEngine.load(model.url, { maxSequences: 8, signal: controller.signal });
    const started = performance.now();
    report = await evaluateCrossLingual(engine, pairs, {
      languages, signal: controller.signal,
      onProgress: (done, total) => {
        progress.value = done / total;
        const seconds = (performance.now() - started) / 1000;
        status.textContent = `Scored ${done} of ${total} questions${done < total ? ` · about ${Math.ceil((seconds / done) * (total - done))} s left` : ''}`;
      },
    });
    addRow('all', report.metrics);
    for (const [subject, metrics] of Object.entries(report.bySubject)) addRow(subject.replaceAll('_', ' '), metrics);
    chart(report);
    $('throughput').textContent = `${pairs.length * 2} questions in ${report.seconds.toFixed(1)} s (${((pairs.length * 2) / report.seconds).toFixed(2)} questions/s on this GPU), ${report.promptTokens} prompt tokens, ${report.cachedPromptTokens} of them from shared KV pages.`;
    $<HTMLButtonElement>('download').disabled = false;
    status.textContent = 'Done.';
    document.body.dataset.state = 'done';
  } catch (error) {
    status.textContent = controller.signal.aborted ? 'Cancelled.' : `The evaluation failed: ${(error as Error).message}`;
    document.body.dataset.state = 'error';
  } finally {
    engine?.dispose();
    runButton.disabled = false;
    cancelButton.disabled = true;
  }
}

$('download').addEventListener('click', () => {
  if (report) downloadJson(`tri-webgpu-eval-${report.languages.join('-')}.json`, report);
});
runButton.addEventListener('click', () => void run());
cancelButton.addEventListener('click', () => controller?.abort());

if (!('gpu' in navigator)) {
  status.textContent = NO_WEBGPU;
  document.body.dataset.state = 'error';
} else {
  status.textContent = 'Ready.';
  runButton.disabled = false;
  if (query.get('model')) $<HTMLInputElement>('model').value = query.get('model')!;
  if (query.get('languages')) $<HTMLInputElement>('languages').value = query.get('languages')!;
  if (query.has('run')) runButton.click();
}
