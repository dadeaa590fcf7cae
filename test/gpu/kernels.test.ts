// Every f32 kernel against the CPU reference on seeded random shapes, including awkward ones
// (K=172, N not a multiple of 64, one token, offsets into larger buffers). Error metric per case:
// max-abs error normalised by the reference's largest magnitude.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { argmax } from '../../src/ops/argmax.ts';
import { attention } from '../../src/ops/attention.ts';
import { embedding } from '../../src/ops/embedding.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { rmsnorm } from '../../src/ops/rmsnorm.ts';
import { rope } from '../../src/ops/rope.ts';
import { siluMul } from '../../src/ops/silu-mul.ts';
import { ropeCosSinTable, ropeInverseFrequencies } from '../../src/model/config.ts';
import { argmax as referenceArgmax, applyRope, matVec, rmsNorm, silu } from '../../src/reference/llama.ts';
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

describe('matmul (f32)', () => {
  const cases = [
    { m: 1, n: 64, k: 64 },
    { m: 1, n: 67, k: 172 }, //   stories260k FFN width, N not a multiple of 64
    { m: 5, n: 33, k: 172 }, //   M not a multiple of the 4 rows per invocation
    { m: 37, n: 130, k: 256, accumulate: true },
    { m: 3, n: 20, k: 24, xOffset: 48, yOffset: 7 },
  ];
  for (const [i, { m, n, k, accumulate = false, xOffset = 0, yOffset = 0 }] of cases.entries()) {
    it(`m=${m} n=${n} k=${k}${accumulate ? ' accumulate' : ''}${xOffset ? ` xOffset=${xOffset} yOffset=${yOffset}` : ''}`, async () => {
      const random = seededRandom(100 + i);
      const x = randomArray(random, xOffset + m * k);
      const w = randomArray(random, n * k);
      const y0 = randomArray(random, yOffset + m * n);
      const yBuffer = gpu.upload('y', y0);
      const actual = await run(
        (r) => matmul(r, { x: gpu.upload('x', x), w: gpu.upload('w', w), y: yBuffer, m, n, k, xOffset, yOffset, accumulate }),
        yBuffer, yOffset + m * n,
      );
      const expected = y0.slice();
      const row = new Float32Array(n);
      for (let r = 0; r < m; r++) {
        matVec(row, w, x.subarray(xOffset + r * k, xOffset + (r + 1) * k), n, k);
        for (let j = 0; j < n; j++) expected[yOffset + r * n + j] = row[j]! + (accumulate ? y0[yOffset + r * n + j]! : 0);
      }
      expectClose('matmul', actual, expected);
    });
  }

  it('refuses K that is not a multiple of 4 before dispatch', () => {
    const buffer = gpu.createBuffer('any', 64);
    expect(() => matmul(new CommandRecorder(gpu), { x: buffer, w: buffer, y: buffer, m: 1, n: 1, k: 6 })).toThrow(/multiples of 4/);
  });
});

describe('rmsnorm', () => {
  for (const [i, { rows, dim, xOffset }] of [{ rows: 1, dim: 64, xOffset: 0 }, { rows: 3, dim: 172, xOffset: 0 }, { rows: 1, dim: 256, xOffset: 512 }].entries()) {
    it(`rows=${rows} dim=${dim} xOffset=${xOffset}`, async () => {
      const random = seededRandom(200 + i);
      const x = randomArray(random, xOffset + rows * dim, 3);
      const weight = randomArray(random, dim);
      const y = gpu.createBuffer('y', rows * dim * 4);
      const actual = await run((r) => rmsnorm(r, { x: gpu.upload('x', x), weight: gpu.upload('w', weight), y, rows, dim, eps: 1e-5, xOffset }), y, rows * dim);
      const expected = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        rmsNorm(expected.subarray(r * dim, (r + 1) * dim), x.subarray(xOffset + r * dim, xOffset + (r + 1) * dim), weight, 1e-5);
      }
      expectClose('rmsnorm', actual, expected);
    });
  }
});

describe('rope (rotate-half)', () => {
  const cases = [
    { tokens: 1, heads: 8, headDim: 8, startPos: 0, offset: 0, rowStride: 64 },
    { tokens: 5, heads: 3, headDim: 32, startPos: 300, offset: 0, rowStride: 96 },
    { tokens: 2, heads: 4, headDim: 8, startPos: 7, offset: 7 * 32, rowStride: 32 }, // K written into a cache slot
  ];
  for (const [i, { tokens, heads, headDim, startPos, offset, rowStride }] of cases.entries()) {
    it(`tokens=${tokens} heads=${heads} headDim=${headDim} startPos=${startPos} offset=${offset}`, async () => {
      const random = seededRandom(300 + i);
      const ropeSpec = { headDim, ropeTheta: 10000, ropeScaling: { type: 'default' } } as const;
      const invFreq = ropeInverseFrequencies(ropeSpec);
      const cosSin = gpu.upload('cosSin', ropeCosSinTable(ropeSpec, startPos + tokens));
      const x = randomArray(random, offset + tokens * rowStride);
      const buffer = gpu.upload('x', x);
      const actual = await run((r) => rope(r, { x: buffer, cosSin, tokens, heads, headDim, startPos, offset, rowStride }), buffer, x.length);
      const expected = x.slice();
      for (let t = 0; t < tokens; t++) {
        applyRope(expected.subarray(offset + t * rowStride, offset + t * rowStride + heads * headDim), heads, headDim, startPos + t, invFreq);
      }
      expectClose('rope', actual, expected);
    });
  }
});

describe('siluMul', () => {
  for (const count of [1, 1000]) {
    it(`count=${count}`, async () => {
      const random = seededRandom(400 + count);
      const gate = randomArray(random, count, 6);
      const up = randomArray(random, count);
      const gateBuffer = gpu.upload('gate', gate);
      const actual = await run((r) => siluMul(r, { gate: gateBuffer, up: gpu.upload('up', up), count }), gateBuffer, count);
      expectClose('siluMul', actual, gate.map((g, i) => silu(g) * up[i]!));
    });
  }
});

describe('embedding', () => {
  it('gathers rows for token ids (hidden=172, repeated ids, last row)', async () => {
    const random = seededRandom(500);
    const vocab = 50;
    const hidden = 172;
    const table = randomArray(random, vocab * hidden);
    const ids = [0, 49, 7, 7];
    const y = gpu.createBuffer('y', ids.length * hidden * 4);
    const actual = await run(
      (r) => embedding(r, { tokenIds: gpu.upload('ids', new Uint32Array(ids)), table: gpu.upload('table', table), y, tokens: ids.length, hidden }),
      y, ids.length * hidden,
    );
    const expected = new Float32Array(ids.flatMap((id) => [...table.subarray(id * hidden, (id + 1) * hidden)]));
    expect(actual).toEqual(expected);
  });
});

describe('argmax', () => {
  for (const { count, offset, label } of [{ count: 1, offset: 0, label: 'one value' }, { count: 4096, offset: 0, label: 'vocab 4096' }, { count: 1000, offset: 37, label: 'offset 37' }]) {
    it(`${label}, ties resolved to the lowest index`, async () => {
      const random = seededRandom(600 + count);
      const values = randomArray(random, offset + count);
      if (count > 10) {
        values[offset + 900] = 5;
        values[offset + 17] = 5; // a tie: the lower index wins, as torch.argmax
      }
      const result = gpu.createBuffer('result', 4);
      const recorder = new CommandRecorder(gpu);
      argmax(recorder, { values: gpu.upload('values', values), result, count, offset });
      recorder.submit();
      const id = new Uint32Array(await gpu.readBack(result, 4))[0];
      expect(id).toBe(referenceArgmax(values.subarray(offset)));
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
