// The GPU sampler against the CPU reference sampler (src/runtime/sampling.ts) draw by draw, and its
// draws against the exact probabilities over many steps.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { seenBits } from '../../src/model/llama-gpu.ts';
import { SAMPLE_ROW_BYTES, sample } from '../../src/ops/sample.ts';
import { type SamplingOptions, referenceSample, samplingConfig } from '../../src/runtime/sampling.ts';
import { randomArray, seededRandom } from '../random.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

async function drawOnGpu(logits: Float32Array<ArrayBuffer>, options: SamplingOptions, seen: Set<number>, steps: number, generated = new Map<number, number>(), subgroups = false): Promise<number[]> {
  const vocab = logits.length;
  const result = gpu.createBuffer('result', steps * 4);
  const logitsBuffer = gpu.upload('logits', logits);
  const seenBuffer = gpu.upload('seen', seenBits(vocab, [...seen]));
  const counts = new Uint32Array(vocab);
  for (const [id, count] of generated) counts[id] = count;
  const countsBuffer = gpu.upload('counts', counts);
  const recorder = new CommandRecorder(gpu);
  const config = samplingConfig(options);
  // Every step a row of one dispatch, all over the same logits, seen bits and counts.
  const rows = Array.from({ length: steps }, (_, step) => ({ config, step, offset: 0, resultIndex: step, seenStart: 0, countsStart: 0 }));
  sample(recorder, { logits: logitsBuffer, seen: seenBuffer, counts: countsBuffer, result, vocab, rows, rowTable: gpu.createBuffer('rows', steps * SAMPLE_ROW_BYTES), subgroups });
  recorder.submit();
  return Array.from(new Uint32Array(await gpu.readBack(result, steps * 4)));
}

// Both variants of the kernel: reductions through workgroup memory, and by subgroups first.
describe.each([['', false], [' (subgroup reductions)', true]])('GPU sampler%s = CPU reference sampler', (_, subgroups) => {
  const cases: [string, SamplingOptions][] = [
    ['greedy', {}],
    ['greedy with repetition penalty 1.3', { repetitionPenalty: 1.3 }],
    ['temperature 0.8', { temperature: 0.8, seed: 1 }],
    ['top-k 5', { temperature: 1, topK: 5, seed: 2 }],
    ['top-p 0.7', { temperature: 0.9, topP: 0.7, seed: 3 }],
    ['min-p 0.1', { temperature: 1.2, minP: 0.1, seed: 4 }],
    ['all together', { temperature: 0.7, topK: 40, topP: 0.9, minP: 0.02, repetitionPenalty: 1.2, seed: 5 }],
    ['greedy with frequency penalty 1.5', { frequencyPenalty: 1.5 }],
    ['greedy with presence penalty 2', { presencePenalty: 2 }],
    ['negative frequency penalty -0.5', { frequencyPenalty: -0.5, temperature: 0.9, seed: 6 }],
    ['all penalties, sampled', { temperature: 0.8, topP: 0.95, repetitionPenalty: 1.1, frequencyPenalty: 0.7, presencePenalty: 0.4, seed: 7 }],
  ];
  for (const [i, [name, options]] of cases.entries()) {
    it(name, async () => {
      if (subgroups) expect(gpu.capabilities.subgroups, 'this adapter has no subgroups: the subgroup sampler cannot be tested').toBe(true);
      const random = seededRandom(500 + i);
      const vocab = 1000 + i * 37; // not a multiple of the 256 lanes
      const logits = randomArray(random, vocab, 4);
      const seen = new Set(Array.from({ length: 30 }, () => Math.floor(random() * vocab)));
      // Generated tokens (a subset of the context) with counts 1..3, for the frequency/presence penalties.
      const generated = new Map([...seen].slice(0, 12).map((id, j) => [id, 1 + (j % 3)]));
      // The penalties must matter: make a seen (and generated) token the raw argmax.
      logits[[...seen][0]!] = 5;
      const steps = 24;
      const gpuDraws = await drawOnGpu(logits, options, seen, steps, generated, subgroups);
      const config = samplingConfig(options);
      const cpuDraws = Array.from({ length: steps }, (_, step) => referenceSample(logits, config, seen, step, generated));
      expect(gpuDraws).toEqual(cpuDraws);
      if (config.temperature === 0 && (config.frequencyPenalty > 0 || config.presencePenalty > 0 || config.repetitionPenalty > 1)) {
        expect(gpuDraws[0], 'the penalty moves greedy off the penalised argmax').not.toBe([...seen][0]);
      }
      if (config.temperature > 0) expect(new Set(gpuDraws).size, 'different steps draw different tokens').toBeGreaterThan(1);
    });
  }

  it('greedy ties go to the lowest id, within a lane, across lanes and across subgroups', async () => {
    const vocab = 3000; // 12 ids per lane
    for (const tied of [[7, 8], [40, 2999], [600, 1300, 2000], [13, 30]]) {
      const logits = new Float32Array(vocab).fill(-1);
      for (const id of tied) logits[id] = 2.5;
      expect(await drawOnGpu(logits, {}, new Set(), 1, new Map(), subgroups), `tied at ${tied.join(', ')}`).toEqual([tied[0]]);
    }
  });
});

describe('GPU sampler draws follow the distribution', () => {
  it('temperature 1 over 8 tokens: frequencies within 5 standard deviations over 3000 steps', async () => {
    const logits = new Float32Array([2, 1, 0.5, 0, -1, -2, 1.5, -10]);
    const probabilities = Array.from(logits, (v) => Math.exp(v));
    const total = probabilities.reduce((a, b) => a + b, 0);
    const steps = 3000;
    const draws = await drawOnGpu(logits, { temperature: 1, seed: 42 }, new Set(), steps);
    probabilities.forEach((p, id) => {
      const expected = (p / total) * steps;
      const observed = draws.filter((d) => d === id).length;
      const sigma = Math.sqrt(steps * (p / total) * (1 - p / total));
      expect(Math.abs(observed - expected), `token ${id}: ${observed} draws, expected ${expected.toFixed(1)}`).toBeLessThan(5 * sigma + 1);
    });
  });

  it('top-k 2 never draws outside the two largest', async () => {
    const draws = await drawOnGpu(new Float32Array([0.1, 3, 0.2, 2.9, 0.3]), { temperature: 2, topK: 2, seed: 7 }, new Set(), 200);
    expect(new Set(draws)).toEqual(new Set([1, 3]));
  });
});

describe('sampling settings', () => {
  it('refuses meaningless values with a typed error', () => {
    expect(() => samplingConfig({ temperature: -1 })).toThrow(/temperature/);
    expect(() => samplingConfig({ topP: 0 })).toThrow(/topP/);
    expect(() => samplingConfig({ topK: 1.5 })).toThrow(/topK/);
    expect(() => samplingConfig({ minP: 1 })).toThrow(/minP/);
    expect(() => samplingConfig({ repetitionPenalty: 0 })).toThrow(/repetitionPenalty/);
    expect(() => samplingConfig({ seed: -3 })).toThrow(/seed/);
    expect(() => samplingConfig({ frequencyPenalty: 2.5 })).toThrow(/frequencyPenalty/);
    expect(() => samplingConfig({ presencePenalty: Number.NaN })).toThrow(/presencePenalty/);
    expect(samplingConfig({})).toEqual({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, seed: 0 });
  });
});

describe('GPU sampler state (the pipelined decode keeps it on the GPU)', () => {
  it('rows of one dispatch use their own logits, seen bits and counts, and record each draw in them', async () => {
    const vocab = 300;
    const random = seededRandom(900);
    const logits = randomArray(random, 2 * vocab, 3);
    const seenWords = Math.ceil(vocab / 32);
    const seenSets = [new Set([3, 77, 299]), new Set([5, 140])];
    const countMaps = [new Map([[3, 2]]), new Map([[140, 1], [5, 3]])];
    for (const [r, seen] of seenSets.entries()) logits[r * vocab + [...seen][0]!] = 6; // a seen token is the raw argmax
    const seen = new Uint32Array(2 * seenWords);
    seenSets.forEach((set, r) => seen.set(seenBits(vocab, [...set]), r * seenWords));
    const counts = new Uint32Array(2 * vocab);
    countMaps.forEach((map, r) => map.forEach((count, id) => (counts[r * vocab + id] = count)));
    const [seenBuffer, countsBuffer] = [gpu.upload('seen', seen), gpu.upload('counts', counts)];
    const [result, lastIds] = [gpu.createBuffer('result', 8), gpu.upload('lastIds', new Uint32Array([7, 7, 7]))];
    const configs = [samplingConfig({ repetitionPenalty: 1.5, frequencyPenalty: 0.5 }), samplingConfig({ temperature: 0.8, topK: 20, presencePenalty: 1, seed: 9 })];
    const recorder = new CommandRecorder(gpu);
    sample(recorder, {
      logits: gpu.upload('logits', logits), seen: seenBuffer, counts: countsBuffer, result, lastIds, vocab, rowTable: gpu.createBuffer('rows', 2 * SAMPLE_ROW_BYTES),
      rows: configs.map((config, r) => ({ config, step: 4, offset: r * vocab, resultIndex: r, seenStart: r * seenWords, countsStart: r * vocab, stateSlot: 2 - r })),
    });
    recorder.submit();
    const drawn = Array.from(new Uint32Array(await gpu.readBack(result, 8)));
    const expected = configs.map((config, r) => referenceSample(logits.subarray(r * vocab, (r + 1) * vocab), config, seenSets[r]!, 4, countMaps[r]!));
    expect(drawn).toEqual(expected);
    // Each draw joined its own row's state: its seen bit, one more count, and lastIds at the row's slot.
    const seenAfter = new Uint32Array(await gpu.readBack(seenBuffer, seen.byteLength));
    const countsAfter = new Uint32Array(await gpu.readBack(countsBuffer, counts.byteLength));
    drawn.forEach((id, r) => {
      const expectedSeen = seenBits(vocab, [...seenSets[r]!, id]);
      expect(Array.from(seenAfter.subarray(r * seenWords, (r + 1) * seenWords))).toEqual(Array.from(expectedSeen));
      expect(countsAfter[r * vocab + id]).toBe((countMaps[r]!.get(id) ?? 0) + 1);
    });
    expect(countsAfter.reduce((a, b) => a + b, 0)).toBe(counts.reduce((a, b) => a + b, 0) + 2);
    expect(Array.from(new Uint32Array(await gpu.readBack(lastIds, 12)))).toEqual([7, drawn[1], drawn[0]]);
  });
});
