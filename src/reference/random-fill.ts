// The CPU yardstick of kernels/random-fill.wgsl: the same PCG hash and the same exact-in-f32 uniforms.

export function pcgHash(value: number): number {
  const state = (Math.imul(value >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The word the kernel writes at `index` in raw-bits mode. */
export function randomWord(seed: number, index: number): number {
  return pcgHash((index ^ pcgHash(seed >>> 0)) >>> 0);
}

/** The two values (before f16 rounding) of word `index` in f16 mode. */
export function randomHalfPair(seed: number, index: number, amplitude: number): [number, number] {
  const bits = randomWord(seed, index);
  const scale = Math.fround(amplitude);
  return [Math.fround((((bits & 0xffff) - 32768) / 32768) * scale), Math.fround((((bits >>> 16) - 32768) / 32768) * scale)];
}

/** The f32 value of word `index` in f32 mode (bit for bit what the kernel writes). */
export function randomFloat(seed: number, index: number, amplitude: number): number {
  return Math.fround((((randomWord(seed, index) >>> 8) - 8388608) / 8388608) * Math.fround(amplitude));
}
