// Scoring and the cross-lingual evaluation against ../shared/eval's goldens (HF transformers, float32):
// tri-tiny on the 12 parallel English/Korean questions: every prompt's ids, every choice's
// log-probability within 1e-3, every prediction, and the metrics exactly. Scoring 4 continuations
// prefills the prompt once; longer continuations reuse its KV pages; bad data gives typed errors naming the row.
import { readFileSync } from 'node:fs';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { beforeAll, describe, expect, it } from 'vitest';
import { EvalDataError } from '../../src/errors.ts';
import { evaluateCrossLingual, matchRows, mcqPrompt, parseMcqFile, rate, shotsBySubject } from '../../src/eval/cross-lingual.ts';
import { NodeModelFiles, getNodeGpu } from '../../src/node.ts';
import { loadLlamaWeightsF32 } from '../../src/model/llama-weights.ts';
import { openModel } from '../../src/model/open.ts';
import { ReferenceLlama } from '../../src/reference/llama.ts';
import { logProbabilities } from '../../src/reference/log-softmax.ts';
import { TriEngine } from '../../src/runtime/engine.ts';
import { modelDir } from '../fixtures.ts';

const EVAL_DIR = new URL('../../../shared/eval/parallel-mcq-sample/', import.meta.url);
const bytes = (name: string) => {
  const buffer = readFileSync(new URL(name, EVAL_DIR));
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
};
interface GoldenCase { sample_id: string; prompt_ids: number[]; choice_ids: number[][]; logprobs: number[]; predicted: string; answer: string; correct: boolean }
const golden = JSON.parse(readFileSync(new URL('golden-tri-tiny.json', EVAL_DIR), 'utf8')) as {
  metrics: { n: number; en_accuracy: number; ko_accuracy: number; consistency_en_to_ko: number | null; agreement: number };
  cases: { en: GoldenCase[]; ko: GoldenCase[] };
};

let engine: TriEngine;
const block = (row: { question: string; option_a: string; option_b: string; option_c: string; option_d: string }) => `${row.question}\nA. ${row.option_a}\nB. ${row.option_b}\nC. ${row.option_c}\nD. ${row.option_d}\nAnswer:`;
beforeAll(async () => {
  engine = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), maxSequences: 8 });
  return () => engine.dispose();
});

describe('cross-lingual evaluation on tri-tiny = HF transformers goldens', () => {
  it('prompts, log-probabilities within 1e-3, predictions and the metrics exactly', async () => {
    const en = await parseMcqFile(bytes('en.jsonl'), 'en.jsonl');
    const ko = await parseMcqFile(bytes('ko.jsonl'), 'ko.jsonl');
    const pairs = matchRows(en, ko, ['en', 'ko']);
    expect(pairs).toHaveLength(golden.metrics.n);
    for (const [side, language] of [[0, 'en'], [1, 'ko']] as const) {
      pairs.forEach((pair, i) => {
        const expected = golden.cases[language][i]!;
        expect(pair[side].sample_id).toBe(expected.sample_id);
        expect(engine.text.encode(mcqPrompt(pair[side]), { addSpecialTokens: false })).toEqual(expected.prompt_ids);
        expect(['A', 'B', 'C', 'D'].map((letter) => engine.text.encode(` ${letter}`, { addSpecialTokens: false }))).toEqual(expected.choice_ids);
      });
    }
    const progress: number[] = [];
    const report = await evaluateCrossLingual(engine, pairs, { languages: ['en', 'ko'], onProgress: (done) => progress.push(done) });
    expect(progress).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    let worst = 0;
    for (const [side, language] of [[0, 'en'], [1, 'ko']] as const) {
      report.results[side].forEach((result, i) => {
        const expected = golden.cases[language][i]!;
        result.logprobs.forEach((value, c) => (worst = Math.max(worst, Math.abs(value - expected.logprobs[c]!))));
        expect(result.predicted).toBe(expected.predicted);
        expect(result.correct).toBe(expected.correct);
      });
    }
    expect(worst).toBeLessThan(1e-3);
    const { metrics } = report;
    expect(metrics.n).toBe(golden.metrics.n);
    expect(metrics.sourceAccuracy.value).toBe(golden.metrics.en_accuracy);
    expect(metrics.targetAccuracy.value).toBe(golden.metrics.ko_accuracy);
    expect(metrics.consistency.value).toBe(golden.metrics.consistency_en_to_ko);
    expect(metrics.agreement.value).toBe(golden.metrics.agreement);
    expect(Object.values(report.bySubject).reduce((sum, subject) => sum + subject.n, 0)).toBe(metrics.n);
    console.log(`eval: ${(24 / report.seconds).toFixed(1)} questions/s, ${report.promptTokens} prompt tokens, worst |Δ logprob| ${worst.toExponential(2)}`);
  }, 120_000);

  it('scoring 4 continuations prefills the prompt once; a longer continuation takes the prompt\'s full pages from the cache; every log-probability = the CPU reference\'s', async () => {
    const prompt = 'Once upon a time, in a small village by the sea, there lived an old fisherman who';
    const promptIds = engine.text.encode(prompt, { addSpecialTokens: false });
    const before = engine.schedulerStats.prefilledTokens;
    const letters = await engine.score({ tokenIds: promptIds }, [' A', ' B', ' C', ' D']);
    expect(engine.schedulerStats.prefilledTokens - before).toBe(promptIds.length); // once, not four times
    expect(letters.map((score) => score.logprobs.length)).toEqual([1, 1, 1, 1]);

    const cachedBefore = engine.schedulerStats.cachedTokens;
    const [long] = await engine.score({ tokenIds: promptIds }, [' loved the sea and the fish']);
    const continuation = long!.tokenIds;
    expect(continuation.length).toBeGreaterThan(3);
    // The first-token request recomputes nothing it can share, the rest request shares the prompt's full pages.
    expect(engine.schedulerStats.cachedTokens - cachedBefore).toBeGreaterThanOrEqual(2 * 16 * Math.floor((promptIds.length - 1) / 16));
    expect(long!.total).toBeCloseTo(long!.logprobs.reduce((a, b) => a + b, 0), 10);

    // The CPU reference (float64 log-softmax of the f32 reference forward) at every position.
    const opened = await openModel(new NodeModelFiles(modelDir('tri-tiny')));
    const reference = new ReferenceLlama(opened.spec, await loadLlamaWeightsF32(opened.spec, opened.checkpoint), promptIds.length + continuation.length);
    const all = [...promptIds, ...continuation];
    const expected: number[] = [];
    const letterIds = letters.map((score) => score.tokenIds[0]!);
    let letterExpected: number[] = [];
    all.forEach((token, position) => {
      const logits = reference.forward(token);
      if (position === promptIds.length - 1) letterExpected = logProbabilities(logits, letterIds);
      if (position >= promptIds.length - 1 && position < all.length - 1) expected.push(logProbabilities(logits, [all[position + 1]!])[0]!);
    });
    letters.forEach((score, i) => expect(Math.abs(score.total - letterExpected[i]!)).toBeLessThan(1e-4));
    long!.logprobs.forEach((value, i) => expect(Math.abs(value - expected[i]!)).toBeLessThan(1e-4));
  });

  it('k-shot: solved examples of the same subject from a dev split before the question, the header once; they share KV pages across questions', async () => {
    const en = await parseMcqFile(bytes('en.jsonl'), 'en.jsonl');
    const [shot, question] = [en[0]!, { ...en[1]!, subject: en[0]!.subject }];
    expect(mcqPrompt(question, [shot])).toBe(
      `The following are multiple choice questions (with answers) about ${shot.subject.replaceAll('_', ' ')}.\n\n` +
      `${shot.question}\nA. ${shot.option_a}\nB. ${shot.option_b}\nC. ${shot.option_c}\nD. ${shot.option_d}\nAnswer: ${shot.answer}\n\n` +
      `${question.question}\nA. ${question.option_a}\nB. ${question.option_b}\nC. ${question.option_c}\nD. ${question.option_d}\nAnswer:`,
    );
    const shots = shotsBySubject(en, 2);
    expect([...shots.values()].every((rows) => rows.length <= 2)).toBe(true);
    // Four questions of one subject with the same 5 shots (header and shots identical): after the first,
    // each takes the shared part's full KV pages from the cache instead of prefilling it again.
    const fiveShots = en.slice(0, 5);
    const oneSubject = en.slice(5, 9).map((row) => ({ ...row, subject: 'astronomy' }));
    const same = new Map([['astronomy', fiveShots]]);
    const before = engine.schedulerStats.cachedTokens;
    const report = await evaluateCrossLingual(engine, matchRows(oneSubject, oneSubject, ['en', 'en']), { languages: ['en', 'en'], shots: [same, same], concurrency: 1 });
    const saved = engine.schedulerStats.cachedTokens - before;
    expect(report.cachedPromptTokens).toBe(saved);
    const sharedPrefix = engine.text.encode(mcqPrompt(oneSubject[0]!, fiveShots).slice(0, -block(oneSubject[0]!).length), { addSpecialTokens: false }).length;
    expect(saved).toBeGreaterThanOrEqual(7 * 16 * Math.floor((sharedPrefix - 16) / 16)); // 7 of the 8 prompts reuse (nearly) all its pages
    console.log(`5-shot: ${saved} of ${report.promptTokens} prompt tokens from shared KV pages (${((100 * saved) / report.promptTokens).toFixed(0)}%)`);
  });

  it('score requests that do not fit the KV cache together wait for pages instead of failing; one too long for it fails typed', async () => {
    const small = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), maxSequences: 2, contextLength: 256 });
    try {
      const en = await parseMcqFile(bytes('en.jsonl'), 'en.jsonl');
      const prompts = en.slice(0, 6).map((row) => mcqPrompt(row, en.slice(6, 8))); // ~170 tokens (11 of the 16 KV pages): only one at a time fits
      const together = await Promise.all(prompts.map((prompt) => small.score(prompt, [' A', ' B'], { addSpecialTokens: false })));
      for (const [i, prompt] of prompts.entries()) {
        const alone = await engine.score(prompt, [' A', ' B'], { addSpecialTokens: false });
        together[i]!.forEach((score, c) => expect(Math.abs(score.total - alone[c]!.total)).toBeLessThan(1e-5));
      }
      await expect(small.score('word '.repeat(400), [' A'])).rejects.toThrow(/context|KV cache/);
      expect((await small.score(prompts[0]!, [' A'], { addSpecialTokens: false }))[0]!.total).toBeCloseTo(together[0]![0]!.total, 5);
    } finally {
      small.dispose();
    }
  });

  it('bad data gives typed errors naming the file and row; CSV and Parquet read the same questions', async () => {
    const encode = (text: string) => new TextEncoder().encode(text).buffer as ArrayBuffer;
    const row = { sample_id: 'x/1', subject: 's', question: 'q', option_a: 'a', option_b: 'b', option_c: 'c', option_d: 'd', answer: 'B' };
    const jsonl = (...rows: object[]) => encode(rows.map((r) => JSON.stringify(r)).join('\n'));
    const missing: Partial<typeof row> = { ...row };
    delete missing.option_c;
    await expect(parseMcqFile(jsonl(row, missing), 'ko.jsonl')).rejects.toThrow(new EvalDataError('ko.jsonl', 2, 'is missing the column option_c'));
    await expect(parseMcqFile(jsonl({ ...row, answer: 'E' }), 'en.jsonl')).rejects.toThrow(/^en\.jsonl, row 1: has the answer "E"; answers are A, B, C or D$/);
    await expect(parseMcqFile(encode('{"sample_id": '), 'en.jsonl')).rejects.toThrow(/row 1: is not valid JSON/);
    await expect(parseMcqFile(jsonl(row, row), 'en.jsonl')).rejects.toThrow(/row 2: repeats sample_id "x\/1"/);
    await expect(parseMcqFile(encode(''), 'en.jsonl')).rejects.toThrow(/no questions/);
    await expect(parseMcqFile(encode('not parquet at all'), 'en.parquet')).rejects.toThrow(/en\.parquet: is not a readable Parquet file/);
    const en = await parseMcqFile(jsonl(row, { ...row, sample_id: 'x/2' }), 'en.jsonl');
    const ko = await parseMcqFile(jsonl(row, { ...row, sample_id: 'x/3' }), 'ko.jsonl');
    expect(() => matchRows(en, ko, ['en', 'ko'])).toThrow(/sample_ids do not match: x\/2 in en but not in ko; x\/3 in ko but not in en/);
    // Parquet (as the hub serves Global-MMLU; written here by an independent writer, snappy-compressed) reads
    // the same questions as the JSON Lines file it was made from, extra columns ignored.
    const sample = await parseMcqFile(bytes('ko.jsonl'), 'ko.jsonl');
    const columns = ['sample_id', 'subject', 'question', 'option_a', 'option_b', 'option_c', 'option_d', 'answer'] as const;
    const parquet = parquetWriteBuffer({ columnData: [...columns.map((name) => ({ name, data: sample.map((q) => q[name]), type: 'STRING' as const })), { name: 'is_annotated', data: sample.map(() => true), type: 'BOOLEAN' as const }] });
    expect(await parseMcqFile(parquet, 'ko/test-00000-of-00001.parquet')).toEqual(sample);
    // CSV with quoted commas and newlines reads the same questions as JSON Lines.
    const csv = `sample_id,subject,question,option_a,option_b,option_c,option_d,answer\nx/1,s,"q, with a comma\nand a line",a,b,c,d,b\n`;
    expect(await parseMcqFile(encode(csv), 'en.csv')).toEqual([{ ...row, question: 'q, with a comma\nand a line' }]);
    await expect(parseMcqFile(encode('sample_id,subject\nx/1,s\n'), 'en.csv')).rejects.toThrow(/en\.csv, row 1: is missing the columns question, option_a/);
  });

  it('rates carry 95% Wilson intervals; consistency is null when nothing in the source language is correct', () => {
    expect(rate(0, 0)).toEqual({ value: null, count: 0, of: 0, interval: null });
    const half = rate(50, 100);
    expect(half.value).toBe(0.5);
    expect(half.interval![0]).toBeCloseTo(0.4038, 3);
    expect(half.interval![1]).toBeCloseTo(0.5962, 3);
    expect(rate(12, 12).interval![1]).toBe(1);
  });
});
