// Tiled linear layer for prefill (M ≥ 16): the same y[m][n] = epilogue( s_m · Σ_k x[m][k] · W[n][k] ) as
// linear.wgsl, with its Params, weight formats, NORMALIZE and EPILOGUE, computed a workgroup tile at a
// time: 32 rows of x × 32 outputs, each of the 64 invocations owning 4 rows × 4 outputs (a mat4x4
// accumulator). K is walked 32 values at a time: the workgroup stages those 32 columns of its 32 rows
// of x, and the matching weights dequantised to f32 (and the up half's, for a gated pair), in workgroup
// memory, then every invocation does 32 rank-1 updates from there. A weight is read from memory once per
// 32 rows (linear.wgsl: once per 4) and x once per 32 outputs, at the price of 2 barriers per 32 K.
// Sums are f32 and run over K in order, so results differ from linear.wgsl only by rounding.
// q4 tiles of 32 K never straddle a group (G is 32, 64 or 128); x past K is staged as zero, so weights
// past K (q4's padding) never count. Chosen at load by timing against linear.wgsl (GpuLlama.load).

struct Params {
  m: u32,
  n: u32,
  k: u32,
  rowQuads: u32,
  xOffset: u32,
  xStride: u32,
  yOffset: u32,
  yStride: u32,
  eps: f32,
}

override FORMAT: u32 = 2u;        // 0 f32, 1 f16, 2 q4
override GROUP_SIZE: u32 = 32u;   // q4
override HAS_MIN: bool = false;
override NORMALIZE: bool = false;
override EPILOGUE: u32 = 0u;

const TILE = 32u;     // rows of x, outputs and K per tile
const QUADS = 8u;     // TILE / 4: row quads (or output quads) across a tile
const LANES = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
@group(0) @binding(3) var<storage, read> scales: array<vec2u>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Element [kk · QUADS + q]: the 4 rows (xTile) or 4 outputs (gateTile, upTile) of quad q at K offset kk.
var<workgroup> xTile: array<vec4f, TILE * QUADS>;
var<workgroup> gateTile: array<vec4f, TILE * QUADS>;
var<workgroup> upTile: array<vec4f, TILE * QUADS>;
var<workgroup> rowSquares: array<f32, LANES>;

fn unpackHalves(word: u32) -> vec2f { return unpack2x16float(word); }

// Stages the weights of output quads [quadBase, quadBase + 8) at K [k0, k0 + 32) into `tile`.
// f32: each invocation one K of 4 quads; f16: one word (2 K) of 2 quads; q4: half a word (4 K) of 1 quad.
fn stageWeights(lane: u32, quadBase: u32, k0: u32, upper: bool) {
  let outputQuads = (params.n + 3u) / 4u;
  let quadShift = select(0u, outputQuads, upper);
  if (FORMAT == 0u) {
    for (var j = 0u; j < 4u; j++) {
      let i = lane + LANES * j;
      let kk = i / QUADS;
      let q = i % QUADS;
      var value = vec4f(0.0);
      if (quadBase + q < outputQuads && k0 + kk < params.k) { value = bitcast<vec4f>(w[(k0 + kk) * params.rowQuads + quadShift + quadBase + q]); }
      storeWeights(upper, kk * QUADS + q, value);
    }
    return;
  }
  if (FORMAT == 1u) {
    for (var j = 0u; j < 2u; j++) {
      let i = lane + LANES * j;
      let slice = i / QUADS; // K pair 2·slice, 2·slice + 1 of the tile
      let q = i % QUADS;
      var even = vec4f(0.0);
      var odd = vec4f(0.0);
      if (quadBase + q < outputQuads && k0 + 2u * slice < params.k) {
        let word = w[(k0 / 2u + slice) * params.rowQuads + quadShift + quadBase + q];
        let r0 = unpackHalves(word.x); let r1 = unpackHalves(word.y); let r2 = unpackHalves(word.z); let r3 = unpackHalves(word.w);
        even = vec4f(r0.x, r1.x, r2.x, r3.x);
        odd = vec4f(r0.y, r1.y, r2.y, r3.y);
      }
      storeWeights(upper, (2u * slice) * QUADS + q, even);
      storeWeights(upper, (2u * slice + 1u) * QUADS + q, odd);
    }
    return;
  }
  let word = lane / 2u;        // 32 words: 4 slices of 8 K × 8 quads
  let slice = word / QUADS;
  let q = word % QUADS;
  let half = lane % 2u;        // K 0–3 or 4–7 of the slice
  let quad = quadShift + quadBase + q;
  var words = vec4u(0u);
  var scale = vec4f(0.0);
  var offset = vec4f(0.0);
  if (quadBase + q < outputQuads) {
    words = w[(k0 / 8u + slice) * params.rowQuads + quad];
    let groups = (params.k + GROUP_SIZE - 1u) / GROUP_SIZE;
    let g = (k0 + 8u * slice) / GROUP_SIZE;
    let packed = scales[g * params.rowQuads + quad];
    scale = vec4f(unpackHalves(packed.x), unpackHalves(packed.y));
    offset = -8.0 * scale;
    if (HAS_MIN) {
      let mins = scales[(groups + g) * params.rowQuads + quad];
      offset = vec4f(unpackHalves(mins.x), unpackHalves(mins.y));
    }
  }
  let signed = bitcast<vec4i>(words);
  for (var i = 0u; i < 4u; i++) {
    let shift = 16u * half + 4u * i;
    let nibbles = vec4f((signed >> vec4u(shift)) & vec4i(15));
    storeWeights(upper, (8u * slice + 4u * half + i) * QUADS + q, nibbles * scale + offset);
  }
}

fn storeWeights(upper: bool, index: u32, value: vec4f) {
  if (upper) { upTile[index] = value; } else { gateTile[index] = value; }
}

// linear.wgsl's store (WGSL has no includes), addressed by the first output rather than its quad.
fn store(row: u32, n0: u32, sums: vec4f, ups: vec4f, scale: f32) {
  if (row >= params.m) { return; }
  for (var c = 0u; c < 4u; c++) {
    let n = n0 + c;
    if (n >= params.n) { return; }
    let out = params.yOffset + row * params.yStride + n;
    var value = sums[c] * scale;
    if (EPILOGUE == 1u) { value += y[out]; }
    if (EPILOGUE == 2u) { value = value / (1.0 + exp(-value)) * (ups[c] * scale); }
    y[out] = value;
  }
}

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_index) lane: u32) {
  let quadBase = group.x * QUADS;   // first output quad of the tile
  let rowBase = group.y * TILE;     // first row of x
  let outputQuad = lane % QUADS;    // this invocation's 4 outputs …
  let rowQuad = lane / QUADS;       // … and 4 rows, within the tile
  // Staging x: invocation l copies 4 vec4s (16 K) of row l/2, half l%2 of the tile's K.
  let stagedRow = lane / 2u;
  let stagedHalf = lane % 2u;
  let row = rowBase + stagedRow;
  let xBase = (params.xOffset + min(row, params.m - 1u) * params.xStride) / 4u;
  var squares = 0.0;
  var gate = mat4x4f();
  var up = mat4x4f();
  for (var k0 = 0u; k0 < params.k; k0 += TILE) {
    for (var j = 0u; j < 4u; j++) {
      let kv = k0 / 4u + 4u * stagedHalf + j; // vec4 index along K
      var value = vec4f(0.0);
      if (row < params.m && kv < params.k / 4u) { value = x[xBase + kv]; }
      squares += dot(value, value);
      let kk = 16u * stagedHalf + 4u * j;
      let slot = stagedRow / 4u;
      let component = stagedRow % 4u;
      xTile[(kk) * QUADS + slot][component] = value.x;
      xTile[(kk + 1u) * QUADS + slot][component] = value.y;
      xTile[(kk + 2u) * QUADS + slot][component] = value.z;
      xTile[(kk + 3u) * QUADS + slot][component] = value.w;
    }
    stageWeights(lane, quadBase, k0, false);
    if (EPILOGUE == 2u) { stageWeights(lane, quadBase, k0, true); }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE; kk++) {
      let xs = xTile[kk * QUADS + rowQuad];
      let ws = gateTile[kk * QUADS + outputQuad];
      gate += mat4x4f(xs * ws.x, xs * ws.y, xs * ws.z, xs * ws.w);
      if (EPILOGUE == 2u) {
        let us = upTile[kk * QUADS + outputQuad];
        up += mat4x4f(xs * us.x, xs * us.y, xs * us.z, xs * us.w);
      }
    }
    workgroupBarrier();
  }
  rowSquares[lane] = squares;
  workgroupBarrier();
  // Column c of gate/up is output c of this invocation's 4, component r its row r: transposed, row r's 4 outputs.
  let sums = transpose(gate);
  let ups = transpose(up);
  for (var r = 0u; r < 4u; r++) {
    let local = 4u * rowQuad + r;
    var scale = 1.0;
    if (NORMALIZE) { scale = inverseSqrt((rowSquares[2u * local] + rowSquares[2u * local + 1u]) / f32(params.k) + params.eps); }
    store(rowBase + local, 4u * (quadBase + outputQuad), sums[r], ups[r], scale);
  }
}
