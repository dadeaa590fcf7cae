// Pipelined decode on tri-tiny (f32): each step is queued before the previous one's drawn ids are read,
// its decode rows taking those ids on the GPU, and the sampler's state (seen bits, counts) kept there.
// Checked against an independent loop that reads every step's logits and draws on the CPU
// (referenceSample, with the CPU's own seen set and counts), against the unpipelined loop, and for stops
// found one step late: the extra row is discarded, no token leaks, and pages shared afterwards are right.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TriEngine } from '../../src/index.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { GpuLlama } from '../../src/model/llama-gpu.ts';
import { NodeModelFiles } from '../../src/model/node-files.ts';
import { openModel } from '../../src/model/open.ts';
import { getNodeGpu } from '../../src/node.ts';
import { type SamplingOptions, referenceSample, samplingConfig } from '../../src/runtime/sampling.ts';
import { modelDir, triTinyGolden } from '../fixtures.ts';

const golden = Object.fromEntries(triTinyGolden().map((c) => [c.name, c]));
const load = async (stepsInFlight: 1 | 2) =>
  TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), weights: { format: 'f32' }, maxSequences: 4, stepsInFlight });

let pipelined: TriEngine;
let unpipelined: TriEngine;
beforeAll(async () => {
  pipelined = await load(2);
  unpipelined = await load(1);
});
afterAll(() => {
  pipelined?.dispose();
  unpipelined?.dispose();
});

/** The generation as a plain loop: the model's logits after every token, drawn on the CPU, up to an end-of-sequence id. */
async function cpuDrawnIds(promptIds: readonly number[], options: SamplingOptions, newTokens: number): Promise<number[]> {
  const gpu = await GpuContext.create(await getNodeGpu());
  const opened = await openModel(new NodeModelFiles(modelDir('tri-tiny')));
  const model = await GpuLlama.load(gpu, opened.spec, opened.checkpoint, { contextLength: 256 });
  try {
    const config = samplingConfig(options);
    const seen = new Set(promptIds);
    const counts = new Map<number, number>();
    const ids: number[] = [];
    let logits = await model.forwardLogits(promptIds);
    for (let step = 0; step < newTokens; step++) {
      const id = referenceSample(logits, config, seen, step, counts);
      ids.push(id);
      seen.add(id);
      counts.set(id, (counts.get(id) ?? 0) + 1);
      if (opened.spec.eosTokenIds.includes(id)) break;
      if (step + 1 < newTokens) logits = await model.forwardLogits([id]);
    }
    return ids;
  } finally {
    model.destroy();
    gpu.destroy();
  }
}

const penalised: SamplingOptions = { temperature: 0, repetitionPenalty: 1.15, frequencyPenalty: 0.3, presencePenalty: 0.2 };
const sampled: SamplingOptions = { temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.3, frequencyPenalty: 0.3, presencePenalty: 0.2, seed: 3 }; // draws 37 tokens before the end-of-sequence id

describe('pipelined decode', () => {
  it('keeps the sampler state on the GPU: penalties and draws equal a loop drawing on the CPU', async () => {
    const prompt = golden.ko_plain!.prompt_ids;
    for (const options of [penalised, sampled]) {
      const result = await pipelined.complete({ tokenIds: prompt }, { ...options, maxNewTokens: 40 });
      const expected = await cpuDrawnIds(prompt, options, 40);
      expect(expected.length).toBeGreaterThanOrEqual(12); // enough draws for the penalties to act on earlier ones
      expect(result.tokenIds).toEqual(expected);
      expect(result.finishReason).toBe(expected.length === 40 ? 'length' : 'stop');
    }
  });

  it('queues each step while the previous runs, and gives the unpipelined ids for several sequences at once', async () => {
    const requests = [
      { prompt: golden.long_en_200tok!.prompt_ids, options: {} },
      { prompt: golden.ko_plain!.prompt_ids, options: sampled },
      { prompt: golden.en_plain!.prompt_ids, options: penalised },
    ];
    const run = (engine: TriEngine) => Promise.all(requests.map(({ prompt, options }) => engine.complete({ tokenIds: prompt }, { ...options, maxNewTokens: 32 })));
    const before = pipelined.schedulerStats;
    const [fast, slow] = [await run(pipelined), await run(unpipelined)];
    const after = pipelined.schedulerStats;
    expect(fast.map((r) => r.tokenIds)).toEqual(slow.map((r) => r.tokenIds));
    expect(fast[0]!.tokenIds.slice(0, golden.long_en_200tok!.greedy_ids.length)).toEqual(golden.long_en_200tok!.greedy_ids);
    // Every decode step but the first was queued while another ran.
    const steps = after.steps - before.steps;
    expect(after.overlappedSteps - before.overlappedSteps).toBeGreaterThanOrEqual(steps - 2);
    expect(unpipelined.schedulerStats.overlappedSteps).toBe(0);
  });

  it('an end-of-sequence id found one step late: nothing past it, pages back, and later sharing of its pages is right', async () => {
    const chat = golden.chat_en!; // greedy ids end with the end-of-sequence id after 15 tokens
    const freePages = pipelined.schedulerStats.freeKvPages;
    const stepsBefore = pipelined.schedulerStats.steps;
    const result = await pipelined.complete({ tokenIds: chat.prompt_ids }, { maxNewTokens: 60 });
    expect(result.finishReason).toBe('stop');
    expect(result.tokenIds).toEqual(chat.greedy_ids);
    // One step for the prompt, one per token after it, and the discarded one queued behind the stop.
    expect(pipelined.schedulerStats.steps - stepsBefore).toBe(chat.greedy_ids.length + 1);
    expect(pipelined.schedulerStats.activeSequences).toBe(0);
    expect(pipelined.schedulerStats.freeKvPages).toBe(freePages);
    // The next prompt repeats this one and its reply: its full pages come from the cache, and its ids
    // equal those of an engine that computes everything (a discarded row committed would break this).
    const followUp = { tokenIds: [...chat.prompt_ids, ...chat.greedy_ids.slice(0, -1), ...golden.en_plain!.prompt_ids] };
    const warm = await pipelined.complete(followUp, { maxNewTokens: 16 });
    expect(warm.usage.cachedPromptTokens).toBeGreaterThanOrEqual(32);
    const cold = await unpipelined.complete(followUp, { maxNewTokens: 16 });
    expect(warm.tokenIds).toEqual(cold.tokenIds);
  });

  it('a stop string or an abort found while the next step runs ends the sequence there; the engine goes on exactly', async () => {
    const plain = golden.ko_plain!;
    const whole = await pipelined.complete({ tokenIds: plain.prompt_ids }, { maxNewTokens: 40 });
    const stop = whole.text.slice(10, 13);
    const stopped = await pipelined.complete({ tokenIds: plain.prompt_ids }, { maxNewTokens: 40, stop: [stop] });
    expect(stopped.finishReason).toBe('stop');
    expect(stopped.text).toBe(whole.text.slice(0, whole.text.indexOf(stop)));

    const controller = new AbortController();
    const stream = pipelined.generate({ tokenIds: plain.prompt_ids }, { maxNewTokens: 40, signal: controller.signal });
    let tokens = 0;
    for await (const chunk of stream) if (chunk.tokenId >= 0 && ++tokens === 5) controller.abort(); // mid-decode, a step queued
    expect(pipelined.schedulerStats.activeSequences).toBe(0);
    const again = await pipelined.complete({ tokenIds: plain.prompt_ids }, { maxNewTokens: plain.greedy_ids.length });
    expect(again.tokenIds).toEqual(plain.greedy_ids);
  });
});
