// Tri-7B's own claim, measured on the user's GPU: cross-lingual consistency on parallel multiple-choice
// questions (Global-MMLU's columns, one file per language, rows matched by sample_id). The prompt and the
// scoring follow ../shared/eval/README.md exactly: the lm-evaluation-harness MMLU form in the same English
// frame for every language, no special tokens, choices " A".." D" scored by log-likelihood (TriEngine.score:
// the prompt prefilled once, log-softmax on the GPU). Metrics: accuracy per language, consistency =
// P(target correct | source correct), answer agreement, each with a 95% Wilson interval, overall and per
// subject.
import { parquetReadObjects } from 'hyparquet';
import Papa from 'papaparse';
import { EvalDataError } from '../errors.ts';
import type { ContinuationScore } from '../runtime/engine.ts';

export const CHOICES = ['A', 'B', 'C', 'D'] as const;
export type Choice = (typeof CHOICES)[number];

/** One question in Global-MMLU's columns. */
export interface McqRow {
  sample_id: string;
  subject: string;
  question: string;
  option_a: string;
  option_b: string;
  option_c: string;
  option_d: string;
  answer: Choice;
}

const COLUMNS = ['sample_id', 'subject', 'question', 'option_a', 'option_b', 'option_c', 'option_d', 'answer'] as const;

/** Checks parsed records (from any format) and returns them as questions; a bad row is named in the error. */
export function checkMcqRows(records: readonly unknown[], source: string): McqRow[] {
  if (records.length === 0) throw new EvalDataError(source, undefined, 'no questions in this file');
  const ids = new Set<string>();
  return records.map((record, i) => {
    const row = i + 1;
    if (record === null || typeof record !== 'object') throw new EvalDataError(source, row, 'is not an object with the question columns');
    const fields = record as Record<string, unknown>;
    const missing = COLUMNS.filter((column) => fields[column] === undefined || fields[column] === null);
    if (missing.length) throw new EvalDataError(source, row, `is missing the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
    const text = Object.fromEntries(COLUMNS.map((column) => [column, String(fields[column])])) as Record<(typeof COLUMNS)[number], string>;
    const answer = text.answer.trim().toUpperCase();
    if (!(CHOICES as readonly string[]).includes(answer)) throw new EvalDataError(source, row, `has the answer "${text.answer}"; answers are A, B, C or D`);
    if (ids.has(text.sample_id)) throw new EvalDataError(source, row, `repeats sample_id "${text.sample_id}"`);
    ids.add(text.sample_id);
    return { ...text, answer: answer as Choice };
  });
}

export type DataFormat = 'jsonl' | 'csv' | 'parquet';

/** The format a file name says (.jsonl, .json lines, .csv, .parquet). */
export function formatOf(name: string): DataFormat {
  const lower = name.toLowerCase().split(/[?#]/)[0]!;
  if (lower.endsWith('.parquet')) return 'parquet';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.json')) return 'jsonl';
  throw new EvalDataError(name, undefined, 'is not a .jsonl, .csv or .parquet file');
}

/**
 * Parses one language's questions: JSON Lines, CSV with a header row (papaparse: quoted fields, commas and
 * newlines inside them), or Parquet (hyparquet: pure JS, snappy included, as the hub's files are).
 */
export async function parseMcqFile(bytes: ArrayBuffer, source: string, format: DataFormat = formatOf(source)): Promise<McqRow[]> {
  if (format === 'parquet') {
    let records: unknown[];
    try {
      records = await parquetReadObjects({ file: bytes });
    } catch (error) {
      throw new EvalDataError(source, undefined, `is not a readable Parquet file (${(error as Error).message})`);
    }
    return checkMcqRows(records, source);
  }
  const text = new TextDecoder().decode(bytes);
  if (format === 'csv') {
    const parsed = Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true });
    const error = parsed.errors[0];
    if (error) throw new EvalDataError(source, (error.row ?? 0) + 1, `is not valid CSV (${error.message})`);
    return checkMcqRows(parsed.data, source);
  }
  const records = text.split('\n').flatMap((line, i) => {
    if (!line.trim()) return [];
    try {
      return [JSON.parse(line) as unknown];
    } catch {
      throw new EvalDataError(source, i + 1, 'is not valid JSON');
    }
  });
  return checkMcqRows(records, source);
}

/** Pairs two languages' questions by sample_id (in the first's order); ids missing from either are named. */
export function matchRows(source: readonly McqRow[], target: readonly McqRow[], names: [string, string]): [McqRow, McqRow][] {
  const byId = new Map(target.map((row) => [row.sample_id, row]));
  const sourceIds = new Set(source.map((row) => row.sample_id));
  const missing = source.filter((row) => !byId.has(row.sample_id)).map((row) => row.sample_id);
  const extra = target.filter((row) => !sourceIds.has(row.sample_id)).map((row) => row.sample_id);
  if (missing.length || extra.length) {
    const list = (ids: string[]) => `${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ` and ${ids.length - 3} more` : ''}`;
    const parts = [missing.length ? `${list(missing)} in ${names[0]} but not in ${names[1]}` : '', extra.length ? `${list(extra)} in ${names[1]} but not in ${names[0]}` : ''];
    throw new EvalDataError(names[1], undefined, `the languages' sample_ids do not match: ${parts.filter(Boolean).join('; ')}`);
  }
  return source.map((row) => [row, byId.get(row.sample_id)!]);
}

const header = (subject: string) => `The following are multiple choice questions (with answers) about ${subject.replaceAll('_', ' ')}.\n\n`;
const block = (row: McqRow) => `${row.question}\nA. ${row.option_a}\nB. ${row.option_b}\nC. ${row.option_c}\nD. ${row.option_d}\nAnswer:`;

/** The prompt of ../shared/eval/README.md: 0-shot, or k solved examples first (the header line once). */
export function mcqPrompt(row: McqRow, shots: readonly McqRow[] = []): string {
  return header(row.subject) + shots.map((shot) => `${block(shot)} ${shot.answer}\n\n`).join('') + block(row);
}

/** k solved examples per subject from a dev split, in its order (a subject with fewer gets all it has). */
export function shotsBySubject(dev: readonly McqRow[], k: number): Map<string, McqRow[]> {
  const shots = new Map<string, McqRow[]>();
  for (const row of dev) {
    const list = shots.get(row.subject) ?? [];
    if (list.length < k) list.push(row);
    shots.set(row.subject, list);
  }
  return shots;
}

export interface QuestionResult {
  sample_id: string;
  subject: string;
  /** log P(" A") .. log P(" D") after the prompt. */
  logprobs: number[];
  predicted: Choice;
  answer: Choice;
  correct: boolean;
}

/** The choice with the highest score; ties to the earliest letter. */
export function predict(logprobs: readonly number[]): Choice {
  let best = 0;
  for (let i = 1; i < logprobs.length; i++) if (logprobs[i]! > logprobs[best]!) best = i;
  return CHOICES[best]!;
}

/** A fraction with its count and a 95% Wilson score interval (null when there is nothing to count). */
export interface Rate {
  value: number | null;
  count: number;
  of: number;
  interval: [number, number] | null;
}

export function rate(count: number, of: number): Rate {
  if (of === 0) return { value: null, count, of, interval: null };
  const z = 1.959964;
  const p = count / of;
  const denominator = 1 + (z * z) / of;
  const centre = (p + (z * z) / (2 * of)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / of + (z * z) / (4 * of * of))) / denominator;
  return { value: p, count, of, interval: [Math.max(0, centre - half), Math.min(1, centre + half)] };
}

export interface PairMetrics {
  n: number;
  sourceAccuracy: Rate;
  targetAccuracy: Rate;
  /** #(both correct) / #(source correct). */
  consistency: Rate;
  /** #(same predicted letter) / n. */
  agreement: Rate;
}

export function pairMetrics(source: readonly QuestionResult[], target: readonly QuestionResult[]): PairMetrics {
  const n = source.length;
  const sourceCorrect = source.filter((q) => q.correct).length;
  const bothCorrect = source.filter((q, i) => q.correct && target[i]!.correct).length;
  return {
    n,
    sourceAccuracy: rate(sourceCorrect, n),
    targetAccuracy: rate(target.filter((q) => q.correct).length, n),
    consistency: rate(bothCorrect, sourceCorrect),
    agreement: rate(source.filter((q, i) => q.predicted === target[i]!.predicted).length, n),
  };
}

/** What the evaluation needs of an engine: TriEngine or WorkerEngine. */
export interface Scorer {
  score(prompt: string, continuations: readonly string[], options?: { signal?: AbortSignal; addSpecialTokens?: boolean }): Promise<ContinuationScore[]>;
}

export interface CrossLingualOptions {
  /** Language names, e.g. ['en', 'ko']. */
  languages: [string, string];
  /** k-shot examples per subject from a dev split (each language's own), in order; 0-shot by default. */
  shots?: [Map<string, McqRow[]>, Map<string, McqRow[]>];
  /** Questions scored at once (batched through the scheduler). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface CrossLingualReport {
  languages: [string, string];
  metrics: PairMetrics;
  bySubject: Record<string, PairMetrics>;
  results: [QuestionResult[], QuestionResult[]];
  /** Prompt tokens scored, those whose KV came from shared pages (k-shot examples, earlier questions), and the time taken. */
  promptTokens: number;
  cachedPromptTokens: number;
  seconds: number;
}

/** Scores one question: the prompt without special tokens, the four letters with a leading space. */
export async function scoreQuestion(engine: Scorer, row: McqRow, shots: readonly McqRow[] = [], signal?: AbortSignal): Promise<QuestionResult & { promptTokens: number; cachedPromptTokens: number }> {
  const scores = await engine.score(mcqPrompt(row, shots), CHOICES.map((letter) => ` ${letter}`), { addSpecialTokens: false, ...(signal ? { signal } : {}) });
  const logprobs = scores.map((score) => score.total);
  const predicted = predict(logprobs);
  return { sample_id: row.sample_id, subject: row.subject, logprobs, predicted, answer: row.answer, correct: predicted === row.answer, promptTokens: scores[0]!.promptTokens, cachedPromptTokens: scores[0]!.cachedPromptTokens };
}

/** The evaluation over matched question pairs: both languages' results, the metrics overall and per subject. */
export async function evaluateCrossLingual(engine: Scorer, pairs: readonly [McqRow, McqRow][], options: CrossLingualOptions): Promise<CrossLingualReport> {
  const started = performance.now();
  const concurrency = options.concurrency ?? 4;
  const results: [QuestionResult[], QuestionResult[]] = [[], []];
  const total = pairs.length * 2;
  let done = 0;
  let promptTokens = 0;
  let cachedPromptTokens = 0;
  const jobs = pairs.flatMap((pair, index) => ([0, 1] as const).map((side) => ({ index, side, row: pair[side] })));
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      options.signal?.throwIfAborted();
      const { index, side, row } = jobs[next++]!;
      const { promptTokens: tokens, cachedPromptTokens: cached, ...result } = await scoreQuestion(engine, row, options.shots?.[side].get(row.subject) ?? [], options.signal);
      results[side][index] = result;
      promptTokens += tokens;
      cachedPromptTokens += cached;
      options.onProgress?.(++done, total);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  const subjects = [...new Set(pairs.map(([row]) => row.subject))].sort();
  const bySubject = Object.fromEntries(subjects.map((subject) => {
    const indexes = pairs.flatMap(([row], i) => (row.subject === subject ? [i] : []));
    return [subject, pairMetrics(indexes.map((i) => results[0][i]!), indexes.map((i) => results[1][i]!))];
  }));
  return { languages: options.languages, metrics: pairMetrics(results[0], results[1]), bySubject, results, promptTokens, cachedPromptTokens, seconds: (performance.now() - started) / 1000 };
}

/**
 * Global-MMLU-Lite on the Hugging Face hub (400 test questions per language, Parquet; Apache-2.0), for
 * real users. The `{language}/{split}-00000-of-00001.parquet` layout is the hub's usual one for a
 * per-language config; it has not been fetched here (tests never touch the hub).
 */
export function globalMmluLiteUrl(language: string, split: 'test' | 'dev' = 'test'): string {
  return `https://huggingface.co/datasets/CohereLabs/Global-MMLU-Lite/resolve/main/${encodeURIComponent(language)}/${split}-00000-of-00001.parquet`;
}
