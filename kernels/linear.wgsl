// Linear layer: y[m][n] = epilogue( s_m · Σ_k x[m][k] · W[n][k] ), W in a GPU format of src/model/quant.ts
// (k-major with 4 rows interleaved; f32, f16 or q4; f16 is read with unpack2x16float, so no `shader-f16`).
//   NORMALIZE: s_m = 1/sqrt(mean_k x[m][k]² + eps), i.e. RMSNorm of x with its weight folded into W at
//              load; otherwise s_m = 1. Saves the norm dispatch and its write and re-read of x.
//   EPILOGUE 0: store;  1: add into y (the residual connection);
//            2: SiLU-gated pair: W holds gate rows, then up rows from row ceil(n/4)·4;
//               y = silu(gate · x) · (up · x).
// Grid: one invocation per (4 consecutive rows of W, block of ROWS rows of x); the row quad varies
// fastest, so neighbouring invocations read neighbouring 16 bytes. ROWS = 1 is the GEMV (decode); ROWS = 4
// the GEMM (prefill), where each unpacked weight serves 4 rows of x. No workgroup barriers:
// SwiftShader runs those ~27× slower than this form (issue 2's note).
// q4 groups may overhang K (K=172, G=32): x reads past K are masked to zero. Variables are initialised
// explicitly: SwiftShader did not re-zero a `var` declared without initialiser inside a loop.
// Measured (bench/kernels.bench.ts, SwiftShader on 2 shared cores, ratio to the best copy kernel):
// GEMV at Tri-7B shapes q4 0.08–0.20, f16 0.26–0.43 (Node and Chromium, several runs); M=128 GEMM 1.6–2.1
// GFLOP/s; split-K 4/16 at 0.5–0.9× the speed of no split. There
// the kernel is bound by the CPU's arithmetic, not memory. Not yet measured on a real GPU.

struct Params {
  m: u32,            // rows of x
  n: u32,            // outputs per row of y
  k: u32,            // inputs; a multiple of 4
  rowQuads: u32,     // rows of W / 4 (the word stride, in vec4s)
  xOffset: u32,      // elements; a multiple of 4
  xStride: u32,      // elements between rows of x; a multiple of 4
  yOffset: u32,      // elements
  yStride: u32,      // elements between rows of y
  eps: f32,
}

override FORMAT: u32 = 2u;        // 0 f32, 1 f16, 2 q4
override GROUP_SIZE: u32 = 32u;   // q4
override HAS_MIN: bool = false;   // q4 with group minimums
override ROWS: u32 = 1u;          // rows of x per invocation: 1 (GEMV) or 4 (GEMM)
override NORMALIZE: bool = false;
override EPILOGUE: u32 = 0u;
// GEMV only: SPLIT_K invocations share one row quad, each taking 1/SPLIT_K of K, and add their partial
// sums through workgroup memory (one barrier) or subgroup shuffles. More invocations in flight for big
// GPUs, where 4096 rows make only 1024 row quads. Chosen at load by timing (GpuLlama.load): on
// SwiftShader, where barriers are costly, split-K 4/16 ran at 0.5–0.9× the speed of no split, and split-K
// 4 by subgroup shuffles at 1.2–1.3× for q4 (4096×4096: 42 vs 50 ms) but 0.75–0.9× for f16.
override SPLIT_K: u32 = 1u;

const WORKGROUP_SIZE = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
@group(0) @binding(3) var<storage, read> scales: array<vec2u>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> partialSums: array<vec4f, WORKGROUP_SIZE>;
var<workgroup> partialUps: array<vec4f, WORKGROUP_SIZE>;
var<workgroup> partialSquares: array<f32, WORKGROUP_SIZE>;

// The arithmetic is written as 4×4 matrix products: W4 (column i = the 4 rows' weights at k = 4s + i)
// times x's vec4 at step s (GEMV), or times X4 (column r = that vec4 of x row r; GEMM). The kernel has
// no dynamically indexed arrays: the first version kept per-row sums in small arrays and was ~2× slower
// on SwiftShader (61 vs 30 ms for the q4 4096×4096 GEMV), presumably because its JIT (Subzero) keeps
// them in memory. Manually unrolling 4 words per iteration was slower again (46–57 vs 33–38 ms).

// Nibbles at shift, shift+4, shift+8, shift+12 of the 4 rows' words: 4 consecutive k, as columns.
// Converted through i32 (u32 → f32 has no single SSE instruction); on SwiftShader this measured the
// same as converting from u32, within noise.
fn nibbleColumns(words: vec4u, shift: u32) -> mat4x4f {
  let signed = bitcast<vec4i>(words);
  return mat4x4f(
    vec4f((signed >> vec4u(shift)) & vec4i(15)),
    vec4f((signed >> vec4u(shift + 4u)) & vec4i(15)),
    vec4f((signed >> vec4u(shift + 8u)) & vec4i(15)),
    vec4f((signed >> vec4u(shift + 12u)) & vec4i(15)));
}

// Weights of the 4 rows of `quad` at k = 4s .. 4s+3 (f32 and f16 formats).
fn weightColumns(quad: u32, s: u32) -> mat4x4f {
  let stride = params.rowQuads;
  if (FORMAT == 0u) {
    return mat4x4f(
      bitcast<vec4f>(w[(4u * s) * stride + quad]), bitcast<vec4f>(w[(4u * s + 1u) * stride + quad]),
      bitcast<vec4f>(w[(4u * s + 2u) * stride + quad]), bitcast<vec4f>(w[(4u * s + 3u) * stride + quad]));
  }
  let a = w[(2u * s) * stride + quad];
  let b = w[(2u * s + 1u) * stride + quad];
  let a0 = unpack2x16float(a.x); let a1 = unpack2x16float(a.y); let a2 = unpack2x16float(a.z); let a3 = unpack2x16float(a.w);
  let b0 = unpack2x16float(b.x); let b1 = unpack2x16float(b.y); let b2 = unpack2x16float(b.z); let b3 = unpack2x16float(b.w);
  return mat4x4f(
    vec4f(a0.x, a1.x, a2.x, a3.x), vec4f(a0.y, a1.y, a2.y, a3.y),
    vec4f(b0.x, b1.x, b2.x, b3.x), vec4f(b0.y, b1.y, b2.y, b3.y));
}

// q4 group g of the 4 rows: (scale, offset) per row, value = q·scale + offset.
fn groupScales(quad: u32, g: u32, groups: u32) -> mat2x4f {
  let packed = scales[g * params.rowQuads + quad];
  let scale = vec4f(unpack2x16float(packed.x), unpack2x16float(packed.y));
  if (HAS_MIN) {
    let mins = scales[(groups + g) * params.rowQuads + quad];
    return mat2x4f(scale, vec4f(unpack2x16float(mins.x), unpack2x16float(mins.y)));
  }
  return mat2x4f(scale, -8.0 * scale);
}

// x's vec4 number i of the row starting at vec4 `base`; zero past K (q4 groups overhang K).
fn xAt(base: u32, i: u32) -> vec4f {
  return select(vec4f(0.0), x[base + i], i < params.k / 4u);
}

// Part `part` of `parts` equal shares of `units` (q4 groups, or 4-value steps): [first, end).
fn share(units: u32, part: u32, parts: u32) -> vec2u {
  let size = (units + parts - 1u) / parts;
  return vec2u(min(part * size, units), min((part + 1u) * size, units));
}

// The x vec4s [first, end) that share `part` of K covers (for the RMSNorm sum of squares).
fn shareOfX(part: u32, parts: u32) -> vec2u {
  if (FORMAT != 2u) { return share(params.k / 4u, part, parts); }
  let groups = share((params.k + GROUP_SIZE - 1u) / GROUP_SIZE, part, parts);
  return min(groups * (GROUP_SIZE / 4u), vec2u(params.k / 4u));
}

// GEMV: Σ_k W[4·quad + c][k] · x[k] in component c, over share `part` of `parts` of K.
fn dots1(quad: u32, xBase: u32, part: u32, parts: u32) -> vec4f {
  var sum = vec4f(0.0);
  if (FORMAT != 2u) {
    let steps = share(params.k / 4u, part, parts);
    for (var s = steps.x; s < steps.y; s++) { sum += weightColumns(quad, s) * x[xBase + s]; }
    return sum;
  }
  let groups = (params.k + GROUP_SIZE - 1u) / GROUP_SIZE;
  let mine = share(groups, part, parts);
  for (var g = mine.x; g < mine.y; g++) {
    var dots = vec4f(0.0);
    var xSum = 0.0;
    for (var word = g * (GROUP_SIZE / 8u); word < (g + 1u) * (GROUP_SIZE / 8u); word++) {
      let words = w[word * params.rowQuads + quad];
      let x0 = xAt(xBase, 2u * word);
      let x1 = xAt(xBase, 2u * word + 1u);
      dots += nibbleColumns(words, 0u) * x0 + nibbleColumns(words, 16u) * x1;
      xSum += dot(x0 + x1, vec4f(1.0));
    }
    let scaleOffset = groupScales(quad, g, groups);
    sum += scaleOffset[0] * dots + scaleOffset[1] * xSum;
  }
  return sum;
}

// GEMM over 4 rows of x: column r of the result is dots1 for x row r.
fn dots4(quad: u32, xBase: vec4u) -> mat4x4f {
  var sum = mat4x4f();
  let steps = params.k / 4u;
  if (FORMAT != 2u) {
    for (var s = 0u; s < steps; s++) {
      let xs = mat4x4f(x[xBase.x + s], x[xBase.y + s], x[xBase.z + s], x[xBase.w + s]);
      sum += weightColumns(quad, s) * xs;
    }
    return sum;
  }
  let groups = (params.k + GROUP_SIZE - 1u) / GROUP_SIZE;
  for (var g = 0u; g < groups; g++) {
    var dots = mat4x4f();
    var xSums = vec4f(0.0);
    for (var word = g * (GROUP_SIZE / 8u); word < (g + 1u) * (GROUP_SIZE / 8u); word++) {
      let words = w[word * params.rowQuads + quad];
      let x0 = mat4x4f(xAt(xBase.x, 2u * word), xAt(xBase.y, 2u * word), xAt(xBase.z, 2u * word), xAt(xBase.w, 2u * word));
      let x1 = mat4x4f(xAt(xBase.x, 2u * word + 1u), xAt(xBase.y, 2u * word + 1u), xAt(xBase.z, 2u * word + 1u), xAt(xBase.w, 2u * word + 1u));
      dots += nibbleColumns(words, 0u) * x0 + nibbleColumns(words, 16u) * x1;
      xSums += vec4f(1.0) * (x0 + x1); // component r: Σ of x row r's 8 values
    }
    let scaleOffset = groupScales(quad, g, groups);
    sum += mat4x4f(
      scaleOffset[0] * dots[0] + scaleOffset[1] * xSums.x, scaleOffset[0] * dots[1] + scaleOffset[1] * xSums.y,
      scaleOffset[0] * dots[2] + scaleOffset[1] * xSums.z, scaleOffset[0] * dots[3] + scaleOffset[1] * xSums.w);
  }
  return sum;
}

fn squares(xBase: u32, range: vec2u) -> f32 {
  var sum = 0.0;
  for (var i = range.x; i < range.y; i++) {
    let v = x[xBase + i];
    sum += dot(v, v);
  }
  return sum;
}

fn scaleFromSquares(sumOfSquares: f32) -> f32 {
  if (!NORMALIZE) { return 1.0; }
  return inverseSqrt(sumOfSquares / f32(params.k) + params.eps);
}

fn rowScale(xBase: u32) -> f32 {
  if (!NORMALIZE) { return 1.0; }
  return scaleFromSquares(squares(xBase, vec2u(0u, params.k / 4u)));
}

// GEMV with SPLIT_K > 1 (m = 1): the invocations of a row quad sum their shares, in workgroup memory or,
// on devices with subgroups, in registers (the two variants of this file: src/gpu/shader-variants.ts).
fn gemvSplit(lane: u32, workgroupIndex: u32) {
  let outputQuads = (params.n + 3u) / 4u;
  let quad = workgroupIndex * (WORKGROUP_SIZE / SPLIT_K) + lane / SPLIT_K;
  let part = lane % SPLIT_K;
  let valid = quad < outputQuads;
  let xBase = params.xOffset / 4u;
  var sums = vec4f(0.0);
  var ups = vec4f(0.0);
  var partSquares = 0.0;
  if (valid) {
    sums = dots1(quad, xBase, part, SPLIT_K);
    if (EPILOGUE == 2u) { ups = dots1(quad + outputQuads, xBase, part, SPLIT_K); }
    if (NORMALIZE) { partSquares = squares(xBase, shareOfX(part, SPLIT_K)); }
  }
//#if subgroups
  // The SPLIT_K lanes of a row quad are consecutive lanes of one subgroup (SPLIT_K ≤ the adapter's
  // smallest subgroup size; GpuLlama checks the result at load): a butterfly of shuffles adds their
  // shares in registers, with no workgroup memory and no barrier. The sums' order differs from the
  // barrier version's, so results agree to rounding, not bit for bit.
  for (var mask = 1u; mask < SPLIT_K; mask *= 2u) {
    sums += subgroupShuffleXor(sums, mask);
    ups += subgroupShuffleXor(ups, mask);
    partSquares += subgroupShuffleXor(partSquares, mask);
  }
  if (valid && part == 0u) { store(0u, quad, sums, ups, scaleFromSquares(partSquares)); }
//#else
  partialSums[lane] = sums;
  partialUps[lane] = ups;
  partialSquares[lane] = partSquares;
  workgroupBarrier();
  if (!valid || part != 0u) { return; }
  var total = vec4f(0.0);
  var totalUps = vec4f(0.0);
  var totalSquares = 0.0;
  for (var other = lane; other < lane + SPLIT_K; other++) {
    total += partialSums[other];
    totalUps += partialUps[other];
    totalSquares += partialSquares[other];
  }
  store(0u, quad, total, totalUps, scaleFromSquares(totalSquares));
//#endif
}

fn store(row: u32, quad: u32, sums: vec4f, ups: vec4f, scale: f32) {
  if (row >= params.m) { return; }
  for (var c = 0u; c < 4u; c++) {
    let n = 4u * quad + c;
    if (n >= params.n) { return; }
    let out = params.yOffset + row * params.yStride + n;
    var value = sums[c] * scale;
    if (EPILOGUE == 1u) { value += y[out]; }
    if (EPILOGUE == 2u) { value = value / (1.0 + exp(-value)) * (ups[c] * scale); }
    y[out] = value;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(workgroup_id) group: vec3u, @builtin(local_invocation_index) lane: u32) {
  if (ROWS == 1u && SPLIT_K > 1u) {
    gemvSplit(lane, group.x + group.y * groups.x);
    return;
  }
  let index = id.x + id.y * groups.x * WORKGROUP_SIZE;
  let outputQuads = (params.n + 3u) / 4u;
  let quad = index % outputQuads;
  let firstRow = (index / outputQuads) * ROWS;
  if (firstRow >= params.m) { return; }
  let upQuad = quad + outputQuads;

  if (ROWS == 1u) {
    let xBase = (params.xOffset + firstRow * params.xStride) / 4u;
    var ups = vec4f(0.0);
    if (EPILOGUE == 2u) { ups = dots1(upQuad, xBase, 0u, 1u); }
    store(firstRow, quad, dots1(quad, xBase, 0u, 1u), ups, rowScale(xBase));
    return;
  }
  // Rows past m repeat the last row (their results are dropped), so the loops need no branch.
  let rows = min(vec4u(firstRow) + vec4u(0u, 1u, 2u, 3u), vec4u(params.m - 1u));
  let xBase = (vec4u(params.xOffset) + rows * params.xStride) / 4u;
  let sums = dots4(quad, xBase);
  var ups = mat4x4f();
  if (EPILOGUE == 2u) { ups = dots4(upQuad, xBase); }
  store(firstRow, quad, sums[0], ups[0], rowScale(xBase.x));
  store(firstRow + 1u, quad, sums[1], ups[1], rowScale(xBase.y));
  store(firstRow + 2u, quad, sums[2], ups[2], rowScale(xBase.z));
  store(firstRow + 3u, quad, sums[3], ups[3], rowScale(xBase.w));
}
