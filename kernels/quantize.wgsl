// Weight conversion at load: rows of a checkpoint tensor (f32, f16 or bf16, row-major W[rows][K]) →
// one of the GPU formats of src/model/quant.ts (blocked k-major f32, f16 or q4), optionally multiplying
// column k by columnScale[k] (an RMSNorm weight folded into the matrix that follows the norm).
// Bit-identical to packWeights() in src/model/quant.ts: every step is exact or a single correctly
// rounded f32 operation, and f16 rounding is done with integer arithmetic, not pack2x16float (whose
// rounding WGSL leaves to the implementation).
// A NaN or ±Inf in the source is never converted silently: the lowest chunk row holding one goes to
// nonFinite[0] (the host sets it to 0xffffffff before, and refuses the tensor after).
// Grid: q4: one invocation per (row, group); f32/f16: one per (row, 4 values). 64 per workgroup,
// 2D-folded. Rows may be loaded in chunks: `rowOffset` places chunk row 0 in the whole matrix.
// Measured on SwiftShader (npm run bench -- runtime): the 111M random Llama (222 MB of bf16) loads in
// 6.4–10.5 s as f32 and 7.7 s as q4 in Node (8.2–9.2 s and 5.4 s in Chromium), reading, converting and
// waiting for each chunk included; q4 took 11.4 / 9.1 s before nibble() guessed and corrected.

struct Params {
  rows: u32,        // rows in this chunk
  k: u32,           // values per source row
  paddedK: u32,     // K rounded up to whole words / groups
  paddedN: u32,     // rows of the whole matrix, rounded up to 4 (the word stride)
  rowOffset: u32,   // destination row of chunk row 0
  columnScaled: u32,
}

override SOURCE: u32 = 0u;       // 0 f32, 1 f16, 2 bf16
override FORMAT: u32 = 2u;       // 0 f32, 1 f16, 2 q4
override GROUP_SIZE: u32 = 32u;  // q4: 32, 64 or 128
override HAS_MIN: bool = false;  // q4: store group minimums

const MAX_GROUP = 128u;
const SMALLEST_NORMAL = 1.17549435e-38;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> source: array<u32>;
@group(0) @binding(2) var<storage, read> columnScale: array<f32>;
@group(0) @binding(3) var<storage, read_write> data: array<u32>;
@group(0) @binding(4) var<storage, read_write> scales: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> nonFinite: array<atomic<u32>>; // [1]: first bad chunk row

fn flushSubnormal(x: f32) -> f32 {
  return select(x, 0.0, abs(x) < SMALLEST_NORMAL);
}

fn halfBitsToFloat(h: u32) -> f32 {
  let exponent = (h >> 10u) & 0x1fu;
  if (exponent == 0u) {
    let magnitude = f32(h & 0x3ffu) * 5.9604644775390625e-8; // 2⁻²⁴, exact
    return select(magnitude, -magnitude, (h & 0x8000u) != 0u);
  }
  return bitcast<f32>(((h & 0x8000u) << 16u) | ((exponent + 112u) << 23u) | ((h & 0x3ffu) << 13u));
}

fn floatToHalfBits(value: f32) -> u32 {
  let bits = bitcast<u32>(value);
  let sign = (bits >> 16u) & 0x8000u;
  let exponent = i32((bits >> 23u) & 0xffu) - 112;
  let mantissa = bits & 0x7fffffu;
  if (exponent >= 31) { return sign | 0x7bffu; }
  if (exponent <= 0) {
    if (exponent < -10) { return sign; }
    let shift = u32(14 - exponent);
    let full = mantissa | 0x800000u;
    var half = full >> shift;
    let rest = full & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u) == 1u)) { half++; }
    return sign | half;
  }
  var half = (u32(exponent) << 10u) | (mantissa >> 13u);
  let rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u) == 1u)) { half++; }
  return sign | min(half, 0x7bffu);
}

// Whether `value` lies beyond the midpoint between levels m and m + 1 (exact comparisons: the midpoints
// are small odd multiples of scale/2, exact in f32). Beyond holds for every m below the value's level.
fn beyondMidpoint(value: f32, minimum: f32, scale: f32, m: u32) -> bool {
  if (HAS_MIN) { return value - minimum > f32(2u * m + 1u) * scale * 0.5; }
  let midpoint = (f32(2u * m) - 15.0) * scale * 0.5;
  return select((value < midpoint), (value > midpoint), scale > 0.0);
}

// The nibble: the number of midpoints the value lies beyond, as the CPU quantizer counts them. A rounded
// division gives a guess, exact comparisons correct it (a step or two at most). On SwiftShader a
// 5632×1024 bf16 → q4 conversion took 211–233 ms this way against 362–432 ms counting all 15.
fn nibble(value: f32, minimum: f32, scale: f32) -> u32 {
  var guess = 0.0;
  if (HAS_MIN) {
    guess = select(select(0.0, 15.0, value - minimum > 0.0), round((value - minimum) / scale), scale > 0.0);
  } else if (scale != 0.0) {
    guess = round(value / scale) + 8.0;
  }
  var q = u32(clamp(guess, 0.0, 15.0));
  while (q > 0u && !beyondMidpoint(value, minimum, scale, q - 1u)) { q--; }
  while (q < 15u && beyondMidpoint(value, minimum, scale, q)) { q++; }
  return q;
}

// Element `col` of chunk row `row`, as the quantizer sees it (zero in the padding).
fn input(row: u32, col: u32) -> f32 {
  if (col >= params.k) { return 0.0; }
  let index = row * params.k + col;
  var value: f32;
  var allOnesExponent: bool; // NaN or ±Inf, told by the bits (WGSL has no isNan, and may assume finite math)
  if (SOURCE == 0u) {
    let bits = source[index];
    value = bitcast<f32>(bits);
    allOnesExponent = (bits & 0x7f800000u) == 0x7f800000u;
  } else {
    let half = (source[index / 2u] >> (16u * (index % 2u))) & 0xffffu;
    value = select(halfBitsToFloat(half), bitcast<f32>(half << 16u), SOURCE == 2u);
    allOnesExponent = select((half & 0x7c00u) == 0x7c00u, (half & 0x7f80u) == 0x7f80u, SOURCE == 2u);
  }
  if (allOnesExponent) {
    atomicMin(&nonFinite[0], row);
    value = 0.0;
  }
  value = flushSubnormal(value);
  if (params.columnScaled != 0u) { value = flushSubnormal(value * flushSubnormal(columnScale[col])); }
  return value;
}

// The word holding k-slice `slice` (1, 2 or 8 values of k per word) of matrix row `row`.
fn wordIndex(slice: u32, row: u32) -> u32 {
  return slice * params.paddedN + row;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  if (FORMAT != 2u) {
    let quads = params.paddedK / 4u;
    if (index >= params.rows * quads) { return; }
    let row = index / quads;
    let col = (index % quads) * 4u;
    let destRow = params.rowOffset + row;
    if (FORMAT == 0u) {
      for (var i = 0u; i < 4u; i++) { data[wordIndex(col + i, destRow)] = bitcast<u32>(input(row, col + i)); }
    } else {
      for (var i = 0u; i < 4u; i += 2u) {
        data[wordIndex((col + i) / 2u, destRow)] = floatToHalfBits(input(row, col + i)) | (floatToHalfBits(input(row, col + i + 1u)) << 16u);
      }
    }
    return;
  }

  let groupsPerRow = params.paddedK / GROUP_SIZE;
  if (index >= params.rows * groupsPerRow) { return; }
  let row = index / groupsPerRow;
  let group = index % groupsPerRow;
  let first = group * GROUP_SIZE;
  var values: array<f32, MAX_GROUP>;
  for (var i = 0u; i < GROUP_SIZE; i++) { values[i] = input(row, first + i); }

  var scale: f32;
  var minimum = 0.0;
  var scaleBits: u32;
  var minBits = 0u;
  if (HAS_MIN) {
    var lo = values[0];
    var hi = values[0];
    for (var i = 1u; i < GROUP_SIZE; i++) { lo = min(lo, values[i]); hi = max(hi, values[i]); }
    minBits = floatToHalfBits(lo);
    minimum = halfBitsToFloat(minBits);
    scaleBits = floatToHalfBits(max(hi - minimum, 0.0) * bitcast<f32>(0x3d888889u)); // × f32(1/15)
  } else {
    // The element of largest magnitude (first on ties) maps to level −8, as llama.cpp's q4_0.
    var extreme = 0.0;
    for (var i = 0u; i < GROUP_SIZE; i++) { if (abs(values[i]) > abs(extreme)) { extreme = values[i]; } }
    scaleBits = floatToHalfBits(extreme * -0.125);
  }
  scale = halfBitsToFloat(scaleBits);

  let destRow = params.rowOffset + row;
  for (var i = 0u; i < GROUP_SIZE; i += 8u) {
    var word = 0u;
    for (var j = 0u; j < 8u; j++) {
      word |= nibble(values[i + j], minimum, scale) << (4u * j);
    }
    data[wordIndex((first + i) / 8u, destRow)] = word;
  }
  let halfN = params.paddedN / 2u;
  let shift = (destRow % 2u) * 16u;
  atomicOr(&scales[group * halfN + destRow / 2u], scaleBits << shift);
  if (HAS_MIN) { atomicOr(&scales[(groupsPerRow + group) * halfN + destRow / 2u], minBits << shift); }
}
