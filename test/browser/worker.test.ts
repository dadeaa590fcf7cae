// The engine in a Web Worker (WebGPU in a dedicated worker, headless Chromium): golden ids across the
// boundary, streamed chat.completions, abort, and typed errors rebuilt on the page side.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ContextOverflowError, EngineDisposedError, InvalidRequestError, WorkerEngine, clearModelCache } from '../../src/index.ts';
import { streamResult } from '../../src/runtime/stream.ts';
import { collectStream } from '../stream.ts';

const modelUrl = (name: string) => new URL(`${inject('modelsUrl')}${name}/`, location.origin).href;
let worker: Worker;
let engine: WorkerEngine;
interface GoldenCase {
  name: string;
  prompt: string;
  messages?: { role: string; content: string }[];
  greedy_ids: number[];
  decoded_text: string;
}
let golden: Record<string, GoldenCase>;
const phases = new Set<string>();

beforeAll(async () => {
  const cases = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts as GoldenCase[];
  golden = Object.fromEntries(cases.map((c) => [c.name, c]));
  worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
  const progress: number[] = [];
  await clearModelCache();
  engine = await WorkerEngine.load(worker, modelUrl('tri-tiny'), { weights: { format: 'f32' }, onProgress: ({ loadedBytes, phase }) => (progress.push(loadedBytes), phases.add(phase)) });
  expect(progress.length).toBeGreaterThan(0);
});

afterAll(() => {
  engine?.dispose();
  worker?.terminate();
});

describe('WorkerEngine (engine in a Web Worker)', () => {
  it('reproduces the golden Korean chat answer, streamed across the worker boundary', async () => {
    const chat = golden.chat_ko!;
    const { deltas, result } = await collectStream(engine.generate(chat.messages!, { maxNewTokens: 48 }));
    expect(result.tokenIds).toEqual(chat.greedy_ids);
    expect(deltas.join('')).toBe(chat.decoded_text);
  });

  it('serves OpenAI-style streamed chat completions', async () => {
    const chat = golden.chat_en!;
    let text = '';
    let finish: string | null = null;
    for await (const chunk of engine.chat.completions.create({ messages: chat.messages!, max_tokens: 48, stream: true })) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(chat.decoded_text);
    expect(finish).toBe('stop');
  });

  it('scores across the worker: the cross-lingual evaluation\'s golden log-probabilities (HF transformers) for an English and a Korean question', async () => {
    const evalGolden = await (await fetch(new URL('../../eval/parallel-mcq-sample/golden-tri-tiny.json', modelUrl('tri-tiny')).href)).json();
    for (const language of ['en', 'ko']) {
      const question = evalGolden.cases[language][0];
      const scores = await engine.score({ tokenIds: question.prompt_ids }, [' A', ' B', ' C', ' D']);
      expect(scores.map((score) => score.tokenIds)).toEqual(question.choice_ids);
      scores.forEach((score, i) => expect(Math.abs(score.total - question.logprobs[i])).toBeLessThan(1e-3));
    }
    await expect(engine.score({ tokenIds: [1] }, [])).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('aborts through an AbortSignal and rebuilds typed errors on the page side', async () => {
    const controller = new AbortController();
    const stream = engine.generate(golden.ko_plain!.prompt, { maxNewTokens: 48, signal: controller.signal });
    const first = await stream.next();
    expect(first.done).toBe(false);
    controller.abort();
    expect((await streamResult(stream)).finishReason).toBe('abort');

    const tooLong = { tokenIds: Array.from({ length: engine.contextLength + 1 }, () => 1332) };
    await expect(engine.complete(tooLong)).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(engine.complete('hi', { topP: 0 })).rejects.toBeInstanceOf(InvalidRequestError);
    const again = await engine.complete(golden.en_plain!.prompt, { maxNewTokens: 48 });
    expect(again.tokenIds).toEqual(golden.en_plain!.greedy_ids);
  });

  it('aborts a load through its signal (AbortError), and a disposed engine ends its streams with EngineDisposedError', async () => {
    const spare = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
    try {
      const controller = new AbortController();
      const loading = WorkerEngine.load(spare, modelUrl('tri-tiny'), { weights: { format: 'f32' }, cache: false, signal: controller.signal, onProgress: () => controller.abort() });
      await expect(loading).rejects.toMatchObject({ name: 'AbortError' });
      // The worker stays usable: load again (a relative URL resolves against the page), then dispose mid-stream.
      // The decode loop's and kernels' options reach the worker's engine (its checks answer for them).
      const relative = new URL(modelUrl('tri-tiny')).pathname;
      await expect(WorkerEngine.load(spare, relative, { stepsInFlight: 3 as 2 })).rejects.toThrow(/stepsInFlight must be 1 or 2/);
      await expect(WorkerEngine.load(spare, relative, { subgroups: 'yes' as unknown as boolean })).rejects.toThrow(/subgroups must be a boolean/);
      const loaded = await WorkerEngine.load(spare, relative, { weights: { format: 'f32' }, stepsInFlight: 1, subgroups: false, tiledPrefill: false });
      const stream = loaded.generate(golden.ko_plain!.prompt, { maxNewTokens: 48 });
      expect((await stream.next()).done).toBe(false);
      loaded.dispose();
      await expect(streamResult(stream)).rejects.toBeInstanceOf(EngineDisposedError);
      await expect(loaded.complete('hi')).rejects.toBeInstanceOf(EngineDisposedError);
    } finally {
      spare.terminate();
    }
  });

  it('ends pending calls with a typed error when the worker is terminated, instead of leaving them waiting', async () => {
    const spare = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
    // The first load kept its conversion from the worker (OPFS sync access handles): this one converts nothing.
    expect(phases.has('store')).toBe(true);
    const converting = new Set<boolean>();
    const loaded = await WorkerEngine.load(spare, modelUrl('tri-tiny'), { weights: { format: 'f32' }, onProgress: (progress) => converting.add(progress.converting) });
    expect([...converting]).toEqual([false]);
    const pending = loaded.complete(golden.ko_plain!.prompt, { maxNewTokens: 48 });
    loaded.terminate();
    await expect(pending).rejects.toBeInstanceOf(EngineDisposedError);
    await expect(loaded.complete('hi')).rejects.toBeInstanceOf(EngineDisposedError);
  });
});
