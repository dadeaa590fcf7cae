// The vision kernels against the CPU reference (src/reference/llava-vision.ts) on seeded random shapes:
// widths that are not multiples of the workgroup, more positions than lanes (CLIP-L's 577), head sizes
// of 32, 40 and 64, each activation, shared and per-row biases.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { biasActivation } from '../../src/ops/bias-activation.ts';
import { layerNorm } from '../../src/ops/layer-norm.ts';
import { MAX_VISION_POSITIONS, visionAttention } from '../../src/ops/vision-attention.ts';
import { activate, attendAllPositions, layerNormRows } from '../../src/reference/llava-vision.ts';
import { randomArray, seededRandom } from '../random.ts';
import { expectClose, runKernel } from './kernel-check.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

const run = (record: (recorder: CommandRecorder) => void, output: GPUBuffer, count: number) => runKernel(gpu, record, output, count);

describe('vision kernels vs the CPU reference', () => {
  it('layer-norm: widths 5, 128, 1029; a row offset mean of 30 (centred variance)', async () => {
    const random = seededRandom(11);
    for (const [rows, width] of [[3, 5], [65, 128], [7, 1029]] as const) {
      const x = randomArray(random, rows * width).map((v) => v + 30);
      const weight = randomArray(random, width);
      const bias = randomArray(random, width);
      const y = gpu.createBuffer('y', rows * width * 4);
      const actual = await run((r) => layerNorm(r, { x: gpu.upload('x', x), weight: gpu.upload('w', weight), bias: gpu.upload('b', bias), y, rows, width, eps: 1e-5 }), y, rows * width);
      expectClose(`layer-norm ${rows}×${width}`, actual, layerNormRows(x, rows, width, { weight, bias }, 1e-5), 1e-4);
    }
  });

  it('bias-activation: none, quick_gelu and gelu; bias shared or per row', async () => {
    const random = seededRandom(12);
    for (const activation of [undefined, 'quick_gelu', 'gelu'] as const) {
      for (const biasPerRow of [false, true]) {
        const [rows, width] = [9, 77];
        const values = randomArray(random, rows * width, 4);
        const bias = randomArray(random, biasPerRow ? rows * width : width);
        const y = gpu.upload('y', values);
        const actual = await run((r) => biasActivation(r, { bias: gpu.upload('bias', bias), y, rows, width, activation, biasPerRow }), y, rows * width);
        const expected = values.map((v, i) => {
          const sum = v + bias[biasPerRow ? i : i % width]!;
          return activation ? activate(sum, activation) : sum;
        });
        expectClose(`bias ${activation ?? 'none'} ${biasPerRow ? 'per row' : 'shared'}`, actual, expected, 1e-6);
      }
    }
  });

  it('vision-attention: 1, 65 and 577 positions; head sizes 32, 40, 64; every position sees every other', async () => {
    const random = seededRandom(13);
    for (const [positions, heads, headDim] of [[1, 2, 32], [65, 4, 32], [577, 2, 64], [50, 3, 40]] as const) {
      const width = heads * headDim;
      const qkv = randomArray(random, positions * 3 * width, 2);
      const part = (third: number) => Float32Array.from({ length: positions * width }, (_, i) => qkv[Math.floor(i / width) * 3 * width + third * width + (i % width)]!);
      const out = gpu.createBuffer('out', positions * width * 4);
      const actual = await run((r) => visionAttention(r, { qkv: gpu.upload('qkv', qkv), out, positions, heads, headDim }), out, positions * width);
      expectClose(`attention ${positions}×${heads}×${headDim}`, actual, attendAllPositions(part(0), part(1), part(2), positions, heads, headDim), 1e-5);
    }
    const recorder = new CommandRecorder(gpu);
    expect(() => visionAttention(recorder, { qkv: gpu.createBuffer('q', 16), out: gpu.createBuffer('o', 16), positions: MAX_VISION_POSITIONS + 1, heads: 1, headDim: 4 })).toThrow(/positions per image/);
  });
});
