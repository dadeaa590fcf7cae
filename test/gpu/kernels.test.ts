// Kernels against the CPU reference on seeded random shapes, including awkward ones (K=172, GQA, one
// token, offsets into larger buffers); the linear, quantize and sample kernels have files of their own.
// Error metric per case: max-abs error normalised by the reference's largest magnitude.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { attention } from '../../src/ops/attention.ts';
import { embedding } from '../../src/ops/embedding.ts';
import { ropeKv } from '../../src/ops/rope-kv.ts';
import { ropeCosSinTable, ropeInverseFrequencies } from '../../src/model/config.ts';
import { uploadPackedMatrix } from '../../src/model/gpu-weights.ts';
import { packWeights, unpackWeights } from '../../src/model/quant.ts';
import { applyRope } from '../../src/reference/llama.ts';
import { errorStats, randomArray, seededRandom } from '../random.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

async function run(record: (recorder: CommandRecorder) => void, output: GPUBuffer, count: number): Promise<Float32Array> {
  const recorder = new CommandRecorder(gpu);
  record(recorder);
  recorder.submit();
  return new Float32Array(await gpu.readBack(output, count * 4));
}

function expectClose(name: string, actual: Float32Array, expected: Float32Array, tolerance = 1e-5): void {
  const { maxAbs, normalised } = errorStats(actual, expected);
  expect(normalised, `${name}: max-abs ${maxAbs.toExponential(2)}, normalised ${normalised.toExponential(2)}`).toBeLessThan(tolerance);
}

describe('rope-kv (rotate-half RoPE on q and k, K/V stored in the cache)', () => {
  const cases = [
    { tokens: 1, heads: 8, kvHeads: 4, headDim: 8, startPos: 0 }, //   GQA, first token
    { tokens: 5, heads: 3, kvHeads: 3, headDim: 32, startPos: 300 },
    { tokens: 2, heads: 4, kvHeads: 2, headDim: 8, startPos: 7 },
  ];
  for (const [i, { tokens, heads, kvHeads, headDim, startPos }] of cases.entries()) {
    it(`tokens=${tokens} heads=${heads}/${kvHeads} headDim=${headDim} startPos=${startPos}`, async () => {
      const random = seededRandom(300 + i);
      const ropeSpec = { headDim, ropeTheta: 10000, ropeScaling: { type: 'default' } } as const;
      const invFreq = ropeInverseFrequencies(ropeSpec);
      const qDim = heads * headDim;
      const kvDim = kvHeads * headDim;
      const rowDim = qDim + 2 * kvDim;
      const qkv = randomArray(random, tokens * rowDim);
      const positions = startPos + tokens;
      const q = gpu.createBuffer('q', tokens * qDim * 4);
      const kCache = gpu.createBuffer('k', positions * kvDim * 4);
      const vCache = gpu.createBuffer('v', positions * kvDim * 4);
      const recorder = new CommandRecorder(gpu);
      ropeKv(recorder, { qkv: gpu.upload('qkv', qkv), cosSin: gpu.upload('cosSin', ropeCosSinTable(ropeSpec, positions)), q, kCache, vCache, tokens, heads, kvHeads, headDim, startPos });
      recorder.submit();
      const actualQ = new Float32Array(await gpu.readBack(q, tokens * qDim * 4));
      const actualK = new Float32Array(await gpu.readBack(kCache, tokens * kvDim * 4, startPos * kvDim * 4));
      const actualV = new Float32Array(await gpu.readBack(vCache, tokens * kvDim * 4, startPos * kvDim * 4));
      const expectedQ = new Float32Array(tokens * qDim);
      const expectedK = new Float32Array(tokens * kvDim);
      const expectedV = new Float32Array(tokens * kvDim);
      for (let t = 0; t < tokens; t++) {
        const row = qkv.subarray(t * rowDim, (t + 1) * rowDim);
        expectedQ.set(row.subarray(0, qDim), t * qDim);
        expectedK.set(row.subarray(qDim, qDim + kvDim), t * kvDim);
        expectedV.set(row.subarray(qDim + kvDim), t * kvDim);
        applyRope(expectedQ.subarray(t * qDim, (t + 1) * qDim), heads, headDim, startPos + t, invFreq);
        applyRope(expectedK.subarray(t * kvDim, (t + 1) * kvDim), kvHeads, headDim, startPos + t, invFreq);
      }
      expectClose('q', actualQ, expectedQ);
      expectClose('k', actualK, expectedK);
      expect(actualV).toEqual(expectedV);
    });
  }
});

describe('embedding gather from every weight format', () => {
  for (const options of [{ format: 'f32' }, { format: 'f16' }, { format: 'q4' }, { format: 'q4', groupSize: 64, withMin: true }] as const) {
    it(`${JSON.stringify(options)}: hidden=172, repeated ids, last row`, async () => {
      const random = seededRandom(500);
      const vocab = 50;
      const hidden = 172;
      const packed = packWeights(randomArray(random, vocab * hidden), vocab, hidden, options);
      const table = uploadPackedMatrix(gpu, 'table', packed);
      const ids = [0, 49, 7, 7];
      const y = gpu.createBuffer('y', ids.length * hidden * 4);
      const actual = await run((r) => embedding(r, { tokenIds: gpu.upload('ids', new Uint32Array(ids)), table, y, tokens: ids.length }), y, ids.length * hidden);
      const values = unpackWeights(packed);
      const expected = new Float32Array(ids.flatMap((id) => [...values.subarray(id * hidden, (id + 1) * hidden)]));
      expect(actual).toEqual(expected);
    });
  }
});

describe('attention (causal, contiguous KV cache)', () => {
  const cases = [
    { tokens: 1, heads: 8, kvHeads: 4, headDim: 8, startPos: 0 }, //   GQA, first token
    { tokens: 1, heads: 8, kvHeads: 8, headDim: 32, startPos: 77 }, // MHA decode
    { tokens: 6, heads: 4, kvHeads: 2, headDim: 8, startPos: 9 }, //   prefill chunk after a prefix
    { tokens: 70, heads: 2, kvHeads: 1, headDim: 32, startPos: 0 }, // more positions than invocations
  ];
  for (const [i, { tokens, heads, kvHeads, headDim, startPos }] of cases.entries()) {
    it(`tokens=${tokens} heads=${heads}/${kvHeads} headDim=${headDim} startPos=${startPos}`, async () => {
      const random = seededRandom(700 + i);
      const length = startPos + tokens;
      const scoreStride = length + 3;
      const kvDim = kvHeads * headDim;
      const q = randomArray(random, tokens * heads * headDim, 2);
      const keys = randomArray(random, length * kvDim, 2);
      const values = randomArray(random, length * kvDim);
      const out = gpu.createBuffer('out', q.byteLength);
      const actual = await run((r) => attention(r, {
        q: gpu.upload('q', q), kCache: gpu.upload('k', keys), vCache: gpu.upload('v', values),
        scores: gpu.createBuffer('scores', tokens * heads * scoreStride * 4), out,
        tokens, heads, kvHeads, headDim, startPos, scoreStride,
      }), out, q.length);

      const expected = new Float32Array(q.length);
      for (let t = 0; t < tokens; t++) {
        for (let h = 0; h < heads; h++) {
          const kvBase = Math.floor(h / (heads / kvHeads)) * headDim;
          const qBase = (t * heads + h) * headDim;
          const scores = Array.from({ length: startPos + t + 1 }, (_, j) => {
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += q[qBase + d]! * keys[j * kvDim + kvBase + d]!;
            return dot / Math.sqrt(headDim);
          });
          const max = Math.max(...scores);
          const weights = scores.map((s) => Math.exp(s - max));
          const sum = weights.reduce((a, b) => a + b, 0);
          for (let d = 0; d < headDim; d++) {
            expected[qBase + d] = weights.reduce((acc, wj, j) => acc + wj * values[j * kvDim + kvBase + d]!, 0) / sum;
          }
        }
      }
      expectClose('attention', actual, expected);
    });
  }
});
