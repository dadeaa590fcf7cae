// kernels/log-softmax.wgsl against the float64 CPU reference: log-probabilities at chosen ids (with
// padding), the top-k ids in order (ties to the lower id), at row offsets, on vocabularies that do not
// divide by the 256 lanes.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { logSoftmax, MAX_TOP_LOGPROBS } from '../../src/ops/log-softmax.ts';
import { logProbabilities, topLogprobs } from '../../src/reference/log-softmax.ts';
import { randomArray, seededRandom } from '../random.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

async function run(logits: Float32Array<ArrayBuffer>, vocab: number, firstRow: number, rows: number, targets: number[], targetsPerRow: number, topK: number) {
  const logitsBuffer = gpu.upload('logits', logits);
  const targetBuffer = gpu.upload('targets', new Uint32Array([...targets, 0]));
  const out = gpu.createBuffer('out', Math.max(4, rows * targetsPerRow * 4));
  const topIds = gpu.createBuffer('topIds', Math.max(4, rows * topK * 4));
  const topValues = gpu.createBuffer('topValues', Math.max(4, rows * topK * 4));
  const recorder = new CommandRecorder(gpu);
  logSoftmax(recorder, { logits: logitsBuffer, vocab, firstRow, rows, targets: targetBuffer, targetsPerRow, out, topK, topIds, topLogprobs: topValues });
  recorder.submit();
  const result = {
    logprobs: Array.from(new Float32Array(await gpu.readBack(out, rows * targetsPerRow * 4))),
    topIds: Array.from(new Uint32Array(await gpu.readBack(topIds, rows * topK * 4))),
    topLogprobs: Array.from(new Float32Array(await gpu.readBack(topValues, rows * topK * 4))),
  };
  for (const buffer of [logitsBuffer, targetBuffer, out, topIds, topValues]) buffer.destroy();
  return result;
}

describe('log-softmax kernel = CPU reference', () => {
  for (const vocab of [5, 1000, 32_003]) {
    it(`vocab ${vocab}: target log-probabilities within 1e-5, the top ${Math.min(vocab, MAX_TOP_LOGPROBS)} ids exactly`, async () => {
      const random = seededRandom(vocab);
      const totalRows = 3;
      const logits = randomArray(random, totalRows * vocab, 8);
      const firstRow = 1;
      const rows = 2;
      const targetsPerRow = 4;
      const targets = Array.from({ length: rows * targetsPerRow }, (_, i) => (i === 3 ? vocab + 7 : Math.floor(random() * vocab))); // one padding id
      const topK = Math.min(vocab, MAX_TOP_LOGPROBS);
      const gpuResult = await run(logits, vocab, firstRow, rows, targets, targetsPerRow, topK);
      for (let i = 0; i < rows; i++) {
        const row = logits.subarray((firstRow + i) * vocab, (firstRow + i + 1) * vocab);
        const ids = targets.slice(i * targetsPerRow, (i + 1) * targetsPerRow);
        const expected = logProbabilities(row, ids.map((id) => Math.min(id, vocab - 1))).map((value, j) => (ids[j]! >= vocab ? 0 : value));
        gpuResult.logprobs.slice(i * targetsPerRow, (i + 1) * targetsPerRow).forEach((value, j) => expect(value).toBeCloseTo(expected[j]!, 5));
        const top = topLogprobs(row, topK);
        expect(gpuResult.topIds.slice(i * topK, (i + 1) * topK)).toEqual(top.map((entry) => entry.id));
        gpuResult.topLogprobs.slice(i * topK, (i + 1) * topK).forEach((value, k) => expect(value).toBeCloseTo(top[k]!.logprob, 5));
      }
    });
  }

  it('ties go to the lower id, in order, and probabilities sum to one', async () => {
    const vocab = 600;
    const logits = new Float32Array(vocab).fill(-2);
    for (const id of [500, 3, 257, 42]) logits[id] = 1.5; // four tied maxima in different lanes' chunks
    logits[599] = 0.5;
    const result = await run(logits, vocab, 0, 1, [...Array(vocab).keys()], vocab, 6);
    expect(result.topIds).toEqual([3, 42, 257, 500, 599, 0]);
    expect(result.logprobs.reduce((sum, value) => sum + Math.exp(value), 0)).toBeCloseTo(1, 5);
  });

  it('refuses more than 20 top log-probabilities', () => {
    const recorder = new CommandRecorder(gpu);
    const buffer = gpu.createBuffer('x', 16);
    expect(() => logSoftmax(recorder, { logits: buffer, vocab: 4, firstRow: 0, rows: 1, targets: buffer, targetsPerRow: 1, out: buffer, topK: 21, topIds: buffer, topLogprobs: buffer })).toThrow(RangeError);
    buffer.destroy();
  });
});
