// kernels/random-fill.wgsl against its CPU reference: raw bits and f32 words bit for bit, f16 pairs within
// one f16 step (WGSL leaves pack2x16float's rounding to the implementation); the same seed gives the same
// words and another seed others; an offset binding writes only its range.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { halfToFloat } from '../../src/model/safetensors.ts';
import { randomFill } from '../../src/ops/random-fill.ts';
import { randomFloat, randomHalfPair, randomWord } from '../../src/reference/random-fill.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

async function fill(words: number, seed: number, mode: 'bits' | 'f16' | 'f32', amplitude = 1): Promise<Uint32Array> {
  const out = gpu.createBuffer('randomFill.test', words * 4);
  const recorder = new CommandRecorder(gpu);
  randomFill(recorder, { out, words, seed, mode, amplitude });
  recorder.submit();
  const result = new Uint32Array(await gpu.readBack(out, words * 4));
  out.destroy();
  return result;
}

describe('random-fill kernel', () => {
  // 70,001 words: the last workgroup is ragged.
  const WORDS = 70_001;

  it('writes the reference words in raw-bits mode, the same for the same seed and different for another', async () => {
    const words = await fill(WORDS, 12345, 'bits');
    const expected = Uint32Array.from({ length: WORDS }, (_, i) => randomWord(12345, i));
    expect(words).toEqual(expected);
    expect(await fill(WORDS, 12345, 'bits')).toEqual(words);
    const other = await fill(WORDS, 12346, 'bits');
    const same = other.reduce((count, word, i) => count + (word === words[i] ? 1 : 0), 0);
    expect(same).toBeLessThan(10);
    // Every 4-bit code appears about equally often (q4 weights use them all).
    const counts = new Array(16).fill(0);
    for (const word of words) for (let shift = 0; shift < 32; shift += 4) counts[(word >>> shift) & 15]++;
    for (const count of counts) expect(Math.abs(count / (WORDS * 8) - 1 / 16)).toBeLessThan(0.002);
  });

  it('writes f32 values in [-amplitude, amplitude) bit for bit as the reference', async () => {
    const words = await fill(WORDS, 7, 'f32', 0.02);
    const values = new Float32Array(words.buffer);
    const expected = Float32Array.from({ length: WORDS }, (_, i) => randomFloat(7, i, 0.02));
    expect(values).toEqual(expected);
    expect(Math.max(...values)).toBeLessThan(0.02);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(-0.02);
  });

  it('writes f16 pairs within one f16 step of the reference, all finite', async () => {
    const amplitude = 0.05;
    const words = await fill(WORDS, 99, 'f16', amplitude);
    let worst = 0;
    for (let i = 0; i < WORDS; i++) {
      const [low, high] = randomHalfPair(99, i, amplitude);
      for (const [bits, reference] of [[words[i]! & 0xffff, low], [words[i]! >>> 16, high]] as const) {
        const value = halfToFloat(bits);
        expect(Number.isFinite(value)).toBe(true);
        // One f16 step at |reference|: 2^(exponent - 10), at least the subnormal step 2^-24.
        const step = Math.max(2 ** (Math.floor(Math.log2(Math.abs(reference) || 2 ** -24)) - 10), 2 ** -24);
        worst = Math.max(worst, Math.abs(value - reference) / step);
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('fills only the bound range of a larger buffer', async () => {
    const out = gpu.createBuffer('randomFill.offset', 1024 * 4);
    const recorder = new CommandRecorder(gpu);
    randomFill(recorder, { out: { buffer: out, offset: 256, size: 100 * 4 }, words: 100, seed: 3, mode: 'bits' });
    recorder.submit();
    const words = new Uint32Array(await gpu.readBack(out, 1024 * 4));
    out.destroy();
    expect([...words.slice(0, 64)].every((word) => word === 0)).toBe(true);
    expect(words.slice(64, 164)).toEqual(Uint32Array.from({ length: 100 }, (_, i) => randomWord(3, i)));
    expect([...words.slice(164)].every((word) => word === 0)).toBe(true);
  });
});
