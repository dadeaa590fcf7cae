// Weight formats on the GPU, and the CPU quantizer that the GPU quantize kernel (kernels/quantize.wgsl)
// must match bit for bit. Every step below is exact in f32 or correctly rounded (one multiply or one
// subtraction of f32 values, f16 rounding by integer arithmetic), so CPU and GPU cannot disagree.
//
// Layout (DESIGN.md §3, refined): a matrix W[N][K] (HF Linear: N outputs, K inputs) is stored "k-major,
// rows interleaved": N is padded to a multiple of 4 (Np) and the 32-bit word holding k-slice w of row n
// sits at w·Np + n. An invocation of the linear kernel owns 4 consecutive rows and reads their words
// as one vec4, so one unpacked x value feeds 4 rows in vec4 arithmetic, and neighbouring invocations
// read neighbouring 16 bytes (coalesced on GPUs, no barriers). On SwiftShader this layout was 2-3×
// faster than one row per invocation (q4 4096×4096 GEMV: ~33 ms vs ~60-100 ms).
//   f32: one value per word.   f16: two values per word, lower k in the low half.
//   q4:  8 values per word, nibble i of word w is element 8w + i (low nibble first). Per group of G
//        (32, 64 or 128) consecutive k of a row an f16 scale: value = (q − 8)·scale; or, `withMin`, an
//        f16 scale and the group's f16 minimum: value = q·scale + min. Scales (then mins) are
//        [K/G][Np/2] u32, row n in half n % 2: 4.5 bits per weight at G=32 (5 with mins).
// K is zero-padded to whole words (f16: 4 values, for vec4 reads of x) or groups (q4): stories260k's
// K=172 becomes 192 for q4. Padded rows are zero and never stored to y.
import { halfToFloat } from './safetensors.ts';

export type WeightFormat = 'f32' | 'f16' | 'q4';
export type Q4GroupSize = 32 | 64 | 128;

export interface WeightFormatOptions {
  format: WeightFormat;
  /** q4 only: k values sharing one scale. */
  groupSize?: Q4GroupSize;
  /** q4 only: store each group's minimum (asymmetric) instead of a symmetric range. */
  withMin?: boolean;
}

const VALUES_PER_WORD: Record<WeightFormat, number> = { f32: 1, f16: 2, q4: 8 };
export const FORMAT_CODE: Record<WeightFormat, number> = { f32: 0, f16: 1, q4: 2 }; // FORMAT override in WGSL

/** Shape and byte sizes of one matrix in a GPU format. */
export interface WeightLayout {
  readonly format: WeightFormat;
  readonly n: number;
  readonly k: number;
  /** K rounded up to whole words (f16) or groups (q4). */
  readonly paddedK: number;
  /** N rounded up to a multiple of 4. */
  readonly paddedN: number;
  readonly groupSize: number; // q4 only; 0 otherwise
  readonly withMin: boolean;
  readonly dataBytes: number;
  /** Scales and offsets (q4 only). */
  readonly scaleBytes: number;
}

export function weightLayout(n: number, k: number, options: WeightFormatOptions): WeightLayout {
  const { format } = options;
  const groupSize = format === 'q4' ? (options.groupSize ?? 32) : 0;
  const padTo = format === 'q4' ? groupSize : 4;
  const paddedK = Math.ceil(k / padTo) * padTo;
  const paddedN = Math.ceil(n / 4) * 4;
  const dataBytes = (paddedK / VALUES_PER_WORD[format]) * paddedN * 4;
  const withMin = format === 'q4' && (options.withMin ?? false);
  const scaleBytes = format === 'q4' ? (withMin ? 2 : 1) * (paddedK / groupSize) * (paddedN / 2) * 4 : 0;
  return { format, n, k, paddedK, paddedN, groupSize, withMin, dataBytes, scaleBytes };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
const SMALLEST_NORMAL_F32 = 1.1754943508222875e-38;
const ONE_FIFTEENTH_F32 = 0.06666667014360428; // Math.fround(1 / 15), bitcast 0x3d888889 in WGSL

/** f32 → f16 bits, round to nearest even, saturating at ±65504 (never ±inf). */
export function floatToHalfBits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (exponent >= 31) return sign | 0x7bff;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    const shift = 14 - exponent;
    const full = mantissa | 0x800000;
    let half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = (exponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
  return sign | Math.min(half, 0x7bff);
}

/** The value the quantizer sees: the source element times its column scale (a folded RMSNorm weight), in f32, subnormals flushed. */
export function quantizerInput(value: number, columnScale = 1): number {
  // Flushing before and after the multiply makes GPUs that flush subnormals agree with this code.
  const flush = (x: number) => (Math.abs(x) < SMALLEST_NORMAL_F32 ? 0 : x);
  return flush(Math.fround(flush(Math.fround(value)) * flush(Math.fround(columnScale))));
}

/** Quantizes one group (already passed through quantizerInput) to nibbles; returns f16 bits of its scale and minimum. */
export function quantizeGroup(values: ArrayLike<number>, nibbles: Uint8Array, withMin: boolean): { scaleBits: number; minBits: number } {
  if (withMin) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      lo = Math.min(lo, values[i]!);
      hi = Math.max(hi, values[i]!);
    }
    const minBits = floatToHalfBits(lo);
    const min = halfToFloat(minBits);
    const range = Math.max(Math.fround(hi - min), 0);
    const scaleBits = floatToHalfBits(Math.fround(range * ONE_FIFTEENTH_F32));
    const scale = halfToFloat(scaleBits);
    for (let i = 0; i < values.length; i++) {
      // Count the midpoints (j + ½)·scale below value − min: both sides exact or correctly rounded.
      const shifted = Math.fround(values[i]! - min);
      let q = 0;
      for (let j = 0; j < 15; j++) if (shifted > (2 * j + 1) * scale * 0.5) q++;
      nibbles[i] = q;
    }
    return { scaleBits, minBits };
  }
  // Symmetric, as llama.cpp's q4_0: the element of largest magnitude (first on ties) maps to level −8.
  let extreme = 0;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]!) > Math.abs(extreme)) extreme = values[i]!;
  const scaleBits = floatToHalfBits(extreme * -0.125);
  const scale = halfToFloat(scaleBits);
  for (let i = 0; i < values.length; i++) {
    // Level j − 8 sits at (j − 8)·scale; count the midpoints (j − 7.5)·scale the value lies beyond.
    let q = 0;
    for (let j = 0; j < 15; j++) {
      const midpoint = (2 * j - 15) * scale * 0.5;
      if (scale > 0 ? values[i]! > midpoint : values[i]! < midpoint) q++;
    }
    nibbles[i] = q;
  }
  return { scaleBits, minBits: 0 };
}

/** A matrix in a GPU format, as the GPU buffers hold it. */
export interface PackedWeights {
  layout: WeightLayout;
  data: Uint32Array<ArrayBuffer>;
  scales: Uint32Array<ArrayBuffer>; // empty unless q4
}

/**
 * The CPU quantizer: W[N][K] (row-major, f32 values) → the GPU layout. `columnScale` (length K) multiplies
 * column k before conversion (a folded RMSNorm weight). Bit-identical to kernels/quantize.wgsl.
 */
export function packWeights(values: Float32Array, n: number, k: number, options: WeightFormatOptions, columnScale?: Float32Array): PackedWeights {
  const layout = weightLayout(n, k, options);
  const packed = { layout, data: new Uint32Array(layout.dataBytes / 4), scales: new Uint32Array(layout.scaleBytes / 4) };
  packRows(packed, values, n, 0, columnScale);
  return packed;
}

/**
 * Converts `rows` rows of f32 values (row-major, K each) into rows firstRow.. of `packed` (whose q4 scales
 * must start zeroed, as the GPU's): the CPU twin of one kernels/quantize.wgsl dispatch over a chunk.
 */
export function packRows(packed: PackedWeights, values: Float32Array, rows: number, firstRow: number, columnScale?: Float32Array): void {
  const { layout, data, scales } = packed;
  const { k, paddedK, paddedN, format } = layout;
  const input = (row: number, col: number) => (col < k ? quantizerInput(values[row * k + col]!, columnScale?.[col] ?? 1) : 0);
  const word = (slice: number, row: number) => slice * paddedN + row;

  if (format === 'f32') {
    const view = new Float32Array(data.buffer);
    for (let row = 0; row < rows; row++) {
      for (let col = 0; col < paddedK; col++) view[word(col, firstRow + row)] = input(row, col);
    }
  } else if (format === 'f16') {
    for (let row = 0; row < rows; row++) {
      for (let col = 0; col < paddedK; col += 2) {
        data[word(col >> 1, firstRow + row)] = floatToHalfBits(input(row, col)) | (floatToHalfBits(input(row, col + 1)) << 16);
      }
    }
  } else {
    const { groupSize, withMin } = layout;
    const groups = paddedK / groupSize;
    const halfN = paddedN / 2;
    const group = new Float32Array(groupSize);
    const nibbles = new Uint8Array(groupSize);
    for (let row = 0; row < rows; row++) {
      const dest = firstRow + row;
      for (let g = 0; g < groups; g++) {
        for (let i = 0; i < groupSize; i++) group[i] = input(row, g * groupSize + i);
        const { scaleBits, minBits } = quantizeGroup(group, nibbles, withMin);
        const shift = (dest & 1) * 16;
        scales[g * halfN + (dest >> 1)]! |= scaleBits << shift;
        if (withMin) scales[(groups + g) * halfN + (dest >> 1)]! |= minBits << shift;
        for (let i = 0; i < groupSize; i += 8) {
          let word32 = 0;
          for (let j = 0; j < 8; j++) word32 |= nibbles[i + j]! << (4 * j);
          data[word((g * groupSize + i) >> 3, dest)] = word32 >>> 0;
        }
      }
    }
  }
}

/** Back to W[N][K] in f32: the exact values the GPU kernels multiply by (the CPU reference for quantized paths). */
export function unpackWeights({ layout, data, scales }: PackedWeights): Float32Array<ArrayBuffer> {
  const { n, k, format, paddedN } = layout;
  const out = new Float32Array(n * k);
  const word = (slice: number, row: number) => slice * paddedN + row;
  const halfN = paddedN / 2;
  const groups = layout.paddedK / (layout.groupSize || 1);
  const half = (word: number, high: boolean) => halfToFloat(high ? word >>> 16 : word & 0xffff);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < k; col++) {
      let value: number;
      if (format === 'f32') {
        value = new Float32Array(data.buffer)[word(col, row)]!;
      } else if (format === 'f16') {
        value = half(data[word(col >> 1, row)]!, (col & 1) === 1);
      } else {
        const g = Math.floor(col / layout.groupSize);
        const scale = half(scales[g * halfN + (row >> 1)]!, (row & 1) === 1);
        const q = (data[word(col >> 3, row)]! >>> (4 * (col & 7))) & 15;
        value = layout.withMin
          ? Math.fround(q * scale + half(scales[(groups + g) * halfN + (row >> 1)]!, (row & 1) === 1))
          : (q - 8) * scale;
      }
      out[row * k + col] = value;
    }
  }
  return out;
}

/** Gate and up matrices (each [n][k]) stacked as the linear kernel's SiLU-gated pair expects. */
export function packGatedPair(gate: Float32Array, up: Float32Array, n: number, k: number, options: WeightFormatOptions, columnScale?: Float32Array): PackedWeights {
  const upStart = Math.ceil(n / 4) * 4;
  const stacked = new Float32Array(2 * upStart * k);
  stacked.set(gate.subarray(0, n * k));
  stacked.set(up.subarray(0, n * k), upStart * k);
  return packWeights(stacked, 2 * upStart, k, options, columnScale);
}
