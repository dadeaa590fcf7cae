// The weight formats on the GPU: the quantize kernel against the CPU quantizer (bit for bit), and the
// linear kernel in every format and variant against an f64 product with the dequantized weights.
import { beforeAll, describe, expect, it } from 'vitest';
import { GpuLimitError } from '../../src/errors.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { uploadPackedMatrix } from '../../src/model/gpu-weights.ts';
import { type WeightFormatOptions, floatToHalfBits, packGatedPair, packWeights, unpackWeights, weightLayout } from '../../src/model/quant.ts';
import { halfToFloat } from '../../src/model/safetensors.ts';
import { type LinearEpilogue, linear, placeholderBuffer } from '../../src/ops/linear.ts';
import { linearTiled } from '../../src/ops/linear-tiled.ts';
import { type SourceDtype, quantize } from '../../src/ops/quantize.ts';
import { silu } from '../../src/reference/llama.ts';
import { errorStats, randomArray, seededRandom } from '../random.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

const FORMATS: [string, WeightFormatOptions][] = [
  ['f32', { format: 'f32' }],
  ['f16', { format: 'f16' }],
  ['q4 G=32', { format: 'q4' }],
  ['q4 G=64 with min', { format: 'q4', groupSize: 64, withMin: true }],
  ['q4 G=128', { format: 'q4', groupSize: 128 }],
];

/** Source values rounded to what a checkpoint of `dtype` can hold, and those bytes. */
function checkpointRows(values: Float32Array<ArrayBuffer>, dtype: SourceDtype): { values: Float32Array; bytes: Uint8Array<ArrayBuffer> } {
  if (dtype === 'F32') return { values, bytes: new Uint8Array(values.buffer.slice(0)) };
  const halves = new Uint16Array(Math.ceil(values.length / 2) * 2);
  const rounded = new Float32Array(values.length);
  const bits = new Uint32Array(rounded.buffer);
  values.forEach((v, i) => {
    if (dtype === 'F16') {
      halves[i] = floatToHalfBits(v);
      rounded[i] = halfToFloat(halves[i]!);
    } else {
      halves[i] = new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16; // truncation is a valid bf16 value
      bits[i] = halves[i]! << 16;
    }
  });
  return { values: rounded, bytes: new Uint8Array(halves.buffer) };
}

describe('quantize kernel = CPU quantizer, bit for bit', () => {
  const sources: SourceDtype[] = ['F32', 'F16', 'BF16'];
  for (const [name, options] of FORMATS) {
    for (const [s, sourceDtype] of sources.entries()) {
      it(`${name} from ${sourceDtype}, K=172, rows in two chunks, column scale`, async () => {
        const random = seededRandom(300 + s);
        const n = 37;
        const k = 172;
        const raw = randomArray(random, n * k, 0.2);
        // Awkward values: an all-zero row, a row with one huge outlier, ties of magnitude.
        raw.fill(0, 0, k);
        raw[k + 5] = 40;
        raw[2 * k + 1] = -0.5;
        raw[2 * k + 2] = 0.5;
        const { values, bytes } = checkpointRows(raw, sourceDtype);
        const columnScale = randomArray(random, k, 2);
        const expected = packWeights(values, n, k, options, columnScale);
        const layout = weightLayout(n, k, options);
        const data = gpu.createBuffer('data', layout.dataBytes);
        const scales = layout.scaleBytes ? gpu.createBuffer('scales', layout.scaleBytes) : placeholderBuffer(gpu, 'write');
        const scaleBuffer = gpu.upload('columnScale', columnScale);
        const elementBytes = sourceDtype === 'F32' ? 4 : 2;
        const nonFinite = gpu.upload('nonFinite', new Uint32Array([0xffffffff]));
        // Two chunks (rows 0–19 and 20–36), as the loader splits big tensors.
        for (const [first, rows] of [[0, 20], [20, 17]] as const) {
          const chunk = bytes.slice(first * k * elementBytes, (first + rows) * k * elementBytes);
          const recorder = new CommandRecorder(gpu);
          quantize(recorder, {
            source: gpu.upload('source', chunk),
            sourceDtype, rows, rowOffset: first, layout, data, scales, columnScale: scaleBuffer, columnScaled: true, nonFinite,
          });
          recorder.submit();
        }
        expect(new Uint32Array(await gpu.readBack(nonFinite, 4))[0], 'all values are finite').toBe(0xffffffff);
        const actualData = new Uint32Array(await gpu.readBack(data, layout.dataBytes));
        expect(Array.from(actualData)).toEqual(Array.from(expected.data));
        if (layout.scaleBytes) {
          const actualScales = new Uint32Array(await gpu.readBack(scales, layout.scaleBytes));
          expect(Array.from(actualScales)).toEqual(Array.from(expected.scales));
        }
      });
    }
  }
});

describe('quantize kernel flags NaN and infinite source values', () => {
  const sources: SourceDtype[] = ['F32', 'F16', 'BF16'];
  for (const sourceDtype of sources) {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      it(`${sourceDtype}: ${bad} in row 7 is reported as row 7`, async () => {
        const n = 12;
        const k = 64;
        const raw = randomArray(seededRandom(77), n * k, 0.2);
        raw[7 * k + 3] = bad;
        raw[9 * k + 1] = bad;
        const { bytes } = checkpointRows(raw, sourceDtype);
        if (sourceDtype === 'F16') { // the CPU f16 rounding saturates: write the f16 NaN/Inf bits directly
          const halves = new Uint16Array(bytes.buffer);
          halves[7 * k + 3] = halves[9 * k + 1] = Number.isNaN(bad) ? 0x7e00 : bad > 0 ? 0x7c00 : 0xfc00;
        }
        const layout = weightLayout(n, k, { format: 'q4', groupSize: 32 });
        const nonFinite = gpu.upload('nonFinite', new Uint32Array([0xffffffff]));
        const recorder = new CommandRecorder(gpu);
        quantize(recorder, {
          source: gpu.upload('source', bytes), sourceDtype, rows: n, rowOffset: 0, layout,
          data: gpu.createBuffer('data', layout.dataBytes), scales: gpu.createBuffer('scales', layout.scaleBytes),
          columnScale: placeholderBuffer(gpu), columnScaled: false, nonFinite,
        });
        recorder.submit();
        expect(new Uint32Array(await gpu.readBack(nonFinite, 4))[0]).toBe(7);
      });
    }
  }
});

describe('linear kernel vs f64 product with the dequantized weights', () => {
  const cases: { m: number; n: number; k: number; epilogue?: LinearEpilogue; normalize?: boolean; xOffset?: number; splitK?: number; subgroups?: boolean; tiled?: boolean }[] = [
    { m: 1, n: 67, k: 172 },
    { m: 1, n: 130, k: 256, epilogue: 'accumulate', normalize: true },
    { m: 1, n: 67, k: 172, normalize: true, splitK: 4 }, //             split-K GEMV: K shares summed in workgroup memory
    { m: 1, n: 33, k: 256, epilogue: 'siluGate', normalize: true, splitK: 16, xOffset: 8 },
    { m: 1, n: 130, k: 96, epilogue: 'accumulate', splitK: 16 }, //   more shares than q4 groups: some are empty
    // The same with the shares added by subgroup shuffles (SwiftShader: subgroups of 4).
    { m: 1, n: 67, k: 172, normalize: true, splitK: 4, subgroups: true },
    { m: 1, n: 33, k: 256, epilogue: 'siluGate', normalize: true, splitK: 4, subgroups: true, xOffset: 8 },
    { m: 1, n: 130, k: 96, epilogue: 'accumulate', splitK: 4, subgroups: true },
    { m: 3, n: 33, k: 172, epilogue: 'siluGate' },
    { m: 13, n: 70, k: 128, normalize: true, xOffset: 8 },
    { m: 9, n: 64, k: 96, epilogue: 'siluGate', normalize: true },
    { m: 512, n: 10, k: 64 }, // the largest prefill chunk the issue asks for
    // The tiled prefill kernel (32 rows × 32 outputs per workgroup, K by 32): M and N off the tile, K=172.
    { m: 16, n: 67, k: 172, tiled: true },
    { m: 45, n: 33, k: 172, epilogue: 'siluGate', normalize: true, tiled: true },
    { m: 64, n: 130, k: 256, epilogue: 'accumulate', normalize: true, xOffset: 8, tiled: true },
    { m: 33, n: 70, k: 96, epilogue: 'siluGate', tiled: true },
    { m: 200, n: 10, k: 64, normalize: true, tiled: true },
  ];
  for (const [name, options] of FORMATS) {
    for (const [i, { m, n, k, epilogue = 'store', normalize = false, xOffset = 0, splitK, subgroups, tiled = false }] of cases.entries()) {
      it(`${name}: m=${m} n=${n} k=${k} ${epilogue}${normalize ? ' normalized' : ''}${xOffset ? ` xOffset=${xOffset}` : ''}${splitK ? ` splitK=${splitK}` : ''}${subgroups ? ' subgroups' : ''}${tiled ? ' tiled' : ''}`, async () => {
        if (subgroups) expect(gpu.capabilities.subgroups, 'this adapter has no subgroups: the subgroup kernels cannot be tested').toBe(true);
        const random = seededRandom(400 + i);
        const gated = epilogue === 'siluGate';
        const weights = randomArray(random, (gated ? 2 : 1) * n * k, 0.5);
        const x = randomArray(random, xOffset + m * k, 2);
        const y0 = randomArray(random, m * n);
        const packed = gated
          ? packGatedPair(weights.subarray(0, n * k), weights.subarray(n * k), n, k, options)
          : packWeights(weights, n, k, options);
        const matrix = uploadPackedMatrix(gpu, 'w', packed, gated ? n : undefined);
        const yBuffer = gpu.upload('y', y0);
        const recorder = new CommandRecorder(gpu);
        (tiled ? linearTiled : linear)(recorder, { x: gpu.upload('x', x), weights: matrix, y: yBuffer, m, xOffset, epilogue, normalizeEps: normalize ? 1e-5 : undefined, splitK, subgroups });
        recorder.submit();
        const actual = new Float32Array(await gpu.readBack(yBuffer, m * n * 4));

        const w = unpackWeights(packed);
        const upStart = Math.ceil(n / 4) * 4;
        const expected = new Float32Array(m * n);
        for (let r = 0; r < m; r++) {
          const row = x.subarray(xOffset + r * k, xOffset + (r + 1) * k);
          const scale = normalize ? 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / k + 1e-5) : 1;
          const dot = (wr: number) => {
            let sum = 0;
            for (let c = 0; c < k; c++) sum += w[wr * k + c]! * row[c]!;
            return sum * scale;
          };
          for (let j = 0; j < n; j++) {
            const value = dot(j);
            expected[r * n + j] = gated ? silu(value) * dot(j + upStart) : value + (epilogue === 'accumulate' ? y0[r * n + j]! : 0);
          }
        }
        const { maxAbs, normalised } = errorStats(actual, expected);
        expect(normalised, `max-abs ${maxAbs.toExponential(2)}`).toBeLessThan(2e-5);
      });
    }
  }
});

describe('linear over a matrix split into parts (as for matrices over the binding limit)', () => {
  it('q4, 67 rows in parts of 40 and 27: the same result as one part', async () => {
    const random = seededRandom(450);
    const n = 67;
    const k = 172;
    const weights = randomArray(random, n * k, 0.5);
    const x = gpu.upload('x', randomArray(random, 2 * k, 2));
    const whole = uploadPackedMatrix(gpu, 'whole', packWeights(weights, n, k, { format: 'q4' }));
    const first = uploadPackedMatrix(gpu, 'first', packWeights(weights.subarray(0, 40 * k), 40, k, { format: 'q4' }));
    const second = uploadPackedMatrix(gpu, 'second', packWeights(weights.subarray(40 * k), 27, k, { format: 'q4' }));
    const split = { layout: whole.layout, gatedPair: false, parts: [first.parts[0]!, { ...second.parts[0]!, outputStart: 40 }] };
    const yWhole = gpu.createBuffer('yWhole', 2 * n * 4);
    const ySplit = gpu.createBuffer('ySplit', 2 * n * 4);
    const recorder = new CommandRecorder(gpu);
    linear(recorder, { x, weights: whole, y: yWhole, m: 2 });
    linear(recorder, { x, weights: split, y: ySplit, m: 2 });
    recorder.submit();
    expect(recorder.dispatchCount).toBe(3);
    expect(new Float32Array(await gpu.readBack(ySplit, 2 * n * 4))).toEqual(new Float32Array(await gpu.readBack(yWhole, 2 * n * 4)));
  });

  it('refuses K that is not a multiple of 4 before dispatch, with a typed error', () => {
    const packed = packWeights(new Float32Array(2 * 6), 2, 6, { format: 'f32' });
    const matrix = uploadPackedMatrix(gpu, 'odd', packed);
    expect(() => linear(new CommandRecorder(gpu), { x: matrix.parts[0]!.data, weights: matrix, y: matrix.parts[0]!.data, m: 1 })).toThrow(GpuLimitError);
  });

  it('refuses a subgroup split-K wider than the adapter\'s smallest subgroup, with a typed error', () => {
    const matrix = uploadPackedMatrix(gpu, 'w', packWeights(new Float32Array(8 * 64), 8, 64, { format: 'f32' }));
    const splitK = 16;
    expect(gpu.capabilities.subgroupMinSize, 'SwiftShader\'s subgroups are 4 wide').toBeLessThan(splitK);
    expect(() => linear(new CommandRecorder(gpu), { x: matrix.parts[0]!.data, weights: matrix, y: gpu.createBuffer('y', 32), m: 1, splitK, subgroups: true })).toThrow(/subgroups of at least 16 lanes/);
  });
});
