// The scheduler and paged KV cache end to end on tri-tiny (f32 weights, so greedy ids must match the
// goldens exactly): interleaved sequences, packed documents under masks, prefix sharing across chat
// turns, and bad input that must leave the engine usable and no page leaked.
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, TriEngine } from '../../src/index.ts';
import { KvCacheFullError } from '../../src/errors.ts';
import { documentSpans } from '../../src/kv/documents.ts';
import { GpuLlama } from '../../src/model/llama-gpu.ts';
import { NodeModelFiles } from '../../src/model/node-files.ts';
import { openModel } from '../../src/model/open.ts';
import { getNodeGpu } from '../../src/node.ts';
import { streamResult } from '../../src/runtime/stream.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { modelDir, storiesGolden, triTinyGolden } from '../fixtures.ts';

const golden = Object.fromEntries(triTinyGolden().map((c) => [c.name, c]));
let engine: TriEngine;

beforeAll(async () => {
  // Chunks of 24 rows: prompts cross chunk and 16-token page boundaries while others decode.
  engine = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), weights: { format: 'f32' }, maxSequences: 4 });
  return () => engine.dispose();
});

describe('scheduler on tri-tiny', () => {
  it('decodes three sequences interleaved, each reproducing its golden ids exactly', async () => {
    const freePages = engine.schedulerStats.freeKvPages;
    const cases = [golden.long_en_200tok!, golden.chat_ko!, golden.mixed_en_ko!];
    const stepsBefore = engine.schedulerStats.steps;
    const results = await Promise.all(cases.map((c) => engine.complete(c.messages ?? c.prompt, { maxNewTokens: c.greedy_ids.length })));
    results.forEach((result, i) => expect(result.tokenIds, cases[i]!.name).toEqual(cases[i]!.greedy_ids));
    // Interleaved: far fewer steps than tokens generated one sequence at a time.
    const tokens = cases.reduce((sum, c) => sum + c.greedy_ids.length, 0);
    expect(engine.schedulerStats.steps - stepsBefore).toBeLessThan(tokens);
    expect(engine.schedulerStats.activeSequences).toBe(0);
    expect(engine.schedulerStats.freeKvPages).toBe(freePages);
  });

  it('decodes the three stories260k goldens interleaved (GQA, tied head), exactly', async () => {
    const stories = await TriEngine.load(new NodeModelFiles(modelDir('stories260k')), { gpu: await getNodeGpu(), weights: { format: 'f32' } });
    try {
      const cases = storiesGolden();
      const freePages = stories.schedulerStats.freeKvPages;
      const results = await Promise.all(cases.map((c) => stories.complete({ tokenIds: c.prompt_ids }, { maxNewTokens: c.generated_ids.length })));
      results.forEach((result, i) => expect(result.tokenIds).toEqual(cases[i]!.generated_ids));
      expect(stories.schedulerStats.freeKvPages).toBe(freePages);
    } finally {
      stories.dispose();
    }
  });

  it('reuses the KV pages of earlier turns: a follow-up turn prefills only new tokens and gives the same ids', async () => {
    const base = golden.chat_en!;
    const first = await engine.complete(base.messages!, { maxNewTokens: 40 });
    const followUp = [...base.messages!, { role: 'assistant', content: first.text }, { role: 'user', content: 'And then?' }];
    const warm = await engine.complete(followUp, { maxNewTokens: 24 });
    expect(warm.usage.cachedPromptTokens).toBeGreaterThanOrEqual(16);
    // The same prompt on a fresh engine (nothing cached) gives the same ids.
    const cold = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), weights: { format: 'f32' } });
    try {
      const reference = await cold.complete(followUp, { maxNewTokens: 24 });
      expect(reference.usage.cachedPromptTokens).toBe(0);
      expect(warm.tokenIds).toEqual(reference.tokenIds);
    } finally {
      cold.dispose();
    }
  });

  it('stops at a stop string and does not return it', async () => {
    const plain = await engine.complete(golden.en_plain!.prompt, { maxNewTokens: 48 });
    const stop = plain.text.slice(8, 11);
    const result = await engine.complete(golden.en_plain!.prompt, { maxNewTokens: 48, stop: [stop] });
    expect(result.finishReason).toBe('stop');
    expect(result.text).toBe(plain.text.slice(0, plain.text.indexOf(stop)));
  });

  it('packs documents: under "document" the last continues as if alone; xlda needs languages', async () => {
    const a = golden.en_plain!;
    const b = golden.ko_plain!;
    const packed = await engine.complete({ tokenIds: [] as number[] }, {}).catch((error: Error) => error);
    expect(packed).toBeInstanceOf(InvalidRequestError); // an empty prompt is refused, typed
    const packedResult = await streamResult(engine.generatePacked([{ tokenIds: a.prompt_ids }, { tokenIds: b.prompt_ids }], 'document', { maxNewTokens: b.greedy_ids.length }));
    expect(packedResult.tokenIds).toEqual(b.greedy_ids);
    await expect(engine.generatePacked([{ text: 'a' }, { text: 'b' }], 'xlda').next()).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(engine.generatePacked([{ text: 'a' }, { text: 'b' }], { visible: [[], [2]] }).next()).rejects.toThrow(/only earlier documents/);
    expect(engine.schedulerStats.activeSequences).toBe(0);
  });
});

describe('packed prefill on the GPU (logits)', () => {
  it('two prompts packed under "document" give each its logits alone (≤ 1e-4)', async () => {
    const gpu = await GpuContext.create(await getNodeGpu());
    const opened = await openModel(new NodeModelFiles(modelDir('tri-tiny')));
    const model = await GpuLlama.load(gpu, opened.spec, opened.checkpoint, { contextLength: 256 });
    try {
      const a = golden.en_plain!.prompt_ids;
      const b = golden.chat_ko!.prompt_ids; // 22 tokens: the packed sequence crosses a page boundary
      const cache = model.kv;
      const logitsAlone = async (tokens: readonly number[]) => {
        const { sequence } = cache.createSequence(tokens, { shareable: false });
        cache.append(sequence.id, tokens);
        const result = await model.step([{ pages: sequence.pages, tokens, startPos: 0, output: { kind: 'logits' } }]);
        cache.finish(sequence.id);
        return result.logits[0]![0]!;
      };
      const documents = documentSpans([{ length: a.length }, { length: b.length }], 'document');
      const { sequence } = cache.createSequence([], { shareable: false });
      cache.append(sequence.id, [...a, ...b]);
      const packed = await model.step([{ pages: sequence.pages, tokens: [...a, ...b], startPos: 0, documents, output: { kind: 'logits', rows: [a.length - 1, a.length + b.length - 1] } }]);
      cache.finish(sequence.id);
      const [packedA, packedB] = packed.logits[0]!;
      const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
      const errorA = maxDiff(packedA!, await logitsAlone(a));
      const errorB = maxDiff(packedB!, await logitsAlone(b));
      console.log(`packed vs alone: max logit difference ${errorA.toExponential(2)} (first), ${errorB.toExponential(2)} (second)`);
      expect(errorA).toBeLessThanOrEqual(1e-4);
      expect(errorB).toBeLessThanOrEqual(1e-4);
      expect(cache.freePageCount).toBe(model.kvPages);
    } finally {
      model.destroy();
    }
  });
});

describe('bad input leaves the engine usable and no page leaked', () => {
  it('an abort from a timer stops a long prefill within a chunk or two, not after the whole prompt', async () => {
    const steps = engine.schedulerStats.steps;
    const controller = new AbortController();
    const prompt = { tokenIds: Array.from({ length: 960 }, (_, i) => golden.long_en_200tok!.prompt_ids[i % 40]!) }; // 15 chunks of 64
    const stream = engine.generate(prompt, { signal: controller.signal });
    const first = stream.next();
    setTimeout(() => controller.abort(), 0);
    const step = await first;
    expect(step.done).toBe(true);
    expect(step.done && step.value.finishReason).toBe('abort');
    expect(engine.schedulerStats.steps - steps).toBeLessThanOrEqual(3);
  });

  it('more sequences than KV pages: a typed error for the one that does not fit, the others finish', async () => {
    const small = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), weights: { format: 'f32' }, contextLength: 64 });
    try {
      const free = small.schedulerStats.freeKvPages; // 4 pages of 16
      const prompt = { tokenIds: golden.long_en_200tok!.prompt_ids.slice(0, 40) }; // 3 pages each
      const first = small.complete(prompt, { maxNewTokens: 4 });
      await expect(small.complete({ tokenIds: golden.long_en_200tok!.prompt_ids.slice(1, 41) }, { maxNewTokens: 4 })).rejects.toBeInstanceOf(KvCacheFullError);
      expect((await first).tokenIds).toHaveLength(4);
      expect(small.schedulerStats.freeKvPages).toBe(free);
      // Context full mid-generation ends with "length".
      const long = await small.complete({ tokenIds: golden.long_en_200tok!.prompt_ids.slice(0, 60) }, { maxNewTokens: 48 });
      expect(long.finishReason).toBe('length');
      expect(long.tokenIds.length).toBe(4);
      expect(small.schedulerStats.freeKvPages).toBe(free);
    } finally {
      small.dispose();
    }
  });

  it('abort during prefill ends with "abort" and frees the pages', async () => {
    const free = engine.schedulerStats.freeKvPages;
    const controller = new AbortController();
    // Reversed, so no page of it is cached: 198 tokens are 4 prefill chunks.
    const stream = engine.generate({ tokenIds: golden.long_en_200tok!.prompt_ids.slice().reverse() }, { maxNewTokens: 8, signal: controller.signal });
    const pending = stream.next();
    controller.abort();
    const step = await pending;
    expect(step.done).toBe(true);
    expect(step.done && step.value.finishReason).toBe('abort');
    expect(engine.schedulerStats.freeKvPages).toBe(free);
  });
});
