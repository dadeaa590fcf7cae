// Seeded random numbers (mulberry32), so every kernel test case is reproducible.
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(random: () => number, length: number, scale = 1): Float32Array<ArrayBuffer> {
  return Float32Array.from({ length }, () => (random() * 2 - 1) * scale);
}

/** Max absolute error, and the same normalised by the reference's largest magnitude. */
export function errorStats(actual: ArrayLike<number>, expected: ArrayLike<number>): { maxAbs: number; normalised: number } {
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(actual[i]! - expected[i]!));
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  if (actual.length !== expected.length) maxAbs = Infinity;
  return { maxAbs, normalised: maxAbs / (maxRef || 1) };
}
