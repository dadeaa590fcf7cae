// `npm run bench -- eval`: scoring throughput of the cross-lingual evaluation (src/eval/) in Node (Dawn):
// questions per second on ../shared/eval's 12 parallel English/Korean questions for tri-tiny (f32) and the
// 111M random Llama (q4; its text is meaningless, its speed is a mid-size model's), 0-shot, and 5-shot on
// tri-tiny (the same 5 solved examples before every question; the header names the question's subject, so
// only questions of one subject share those pages: 1–2 per subject in this sample), and the prompt tokens
// that prefix sharing served from cached KV pages. Not a test: it prints, it asserts nothing. ~3 minutes
// on 2 cores with SwiftShader.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bench, describe } from 'vitest';
import { evaluateCrossLingual, matchRows, parseMcqFile } from '../src/eval/cross-lingual.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import type { WeightFormatOptions } from '../src/model/quant.ts';
import { TriEngine } from '../src/runtime/engine.ts';
import { RANDOM_LLAMA_DIR, ensureRandomLlama } from './random-llama.ts';

const SAMPLE = new URL('../../shared/eval/parallel-mcq-sample/', import.meta.url);
const read = async (name: string) => {
  const bytes = readFileSync(new URL(name, SAMPLE));
  return parseMcqFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, name);
};
const [en, ko] = await Promise.all([read('en.jsonl'), read('ko.jsonl')]);
const pairs = matchRows(en, ko, ['en', 'ko']);
// 5-shot: the sample has no dev split, so every subject gets the same first five questions as examples.
const shotsOf = (rows: typeof en) => new Map(rows.map((row) => [row.subject, rows.slice(0, 5)]));

ensureRandomLlama();
const models: [string, string, WeightFormatOptions, number[]][] = [
  ['tri-tiny', fileURLToPath(new URL('../public/models/tri-tiny', import.meta.url)), { format: 'f32' }, [0, 5]],
  ['random 111M', RANDOM_LLAMA_DIR, { format: 'q4' }, [0]],
];
const lines = ['| model | shots | questions/s | prompt tokens | from shared KV pages |', '|---|---:|---:|---:|---:|'];
for (const [name, folder, weights, shotCounts] of models) {
  const engine = await TriEngine.load(new NodeModelFiles(folder), { gpu: await getNodeGpu(), weights, maxSequences: 8 });
  await evaluateCrossLingual(engine, pairs.slice(0, 1), { languages: ['en', 'ko'] }); // compiles the kernels
  for (const shots of shotCounts) {
    const report = await evaluateCrossLingual(engine, pairs, { languages: ['en', 'ko'], ...(shots ? { shots: [shotsOf(en), shotsOf(ko)] as [Map<string, typeof en>, Map<string, typeof en>] } : {}) });
    const questions = pairs.length * 2;
    lines.push(`| ${name} ${weights.format} | ${shots} | ${(questions / report.seconds).toFixed(2)} | ${report.promptTokens} | ${report.cachedPromptTokens} (${((100 * report.cachedPromptTokens) / report.promptTokens).toFixed(0)}%) |`);
  }
  engine.dispose();
}
console.log(`## Node (Dawn): cross-lingual evaluation, ${pairs.length} questions × 2 languages\n${lines.join('\n')}`);

describe('eval', () => {
  // vitest bench needs a bench; the table above is the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
