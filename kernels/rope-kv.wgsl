// After the fused Q/K/V projection: rotate-half RoPE on q and k, and store k and v in the paged KV cache.
//   qkv [rows][heads·headDim + 2·kvHeads·headDim] (q, then k, then v of each row)
//   → q [rows][heads·headDim] rotated (f32); K/V of row r go to its sequence's page for its position,
//   as f32 (KV_FORMAT 0), f16 pairs packed in u32 (1: half the memory, 512 KiB instead of 1 MiB per token
//   for Tri-7B's 32 layers × 4096 K and 4096 V values), or int8 (2: a quarter plus one f32 scale per
//   token and head: each head's headDim/4 words of four int8 (pack4x8snorm of value / max |value|) then
//   the scale, max |value|; 264 KiB per Tri-7B token).
//   `tables` as in paged-attention.wgsl: row r = (sequence slot, position, …) at 4r, sequence σ's page
//   table offset at sequencesOffset + 4σ; kCache/vCache [page][KV_PAGE_TOKENS][kvHeads·headDim].
// Rotate-half at the row's position p, for element e of a head and its partner e ± d/2:
//   out[e] = x[e]·cos − x[e+d/2]·sin (e < d/2),  out[e] = x[e]·cos + x[e−d/2]·sin (e ≥ d/2),
// angle index e mod d/2; cos/sin from a table [position][headDim/2] computed on the CPU with the
// configured scaling: WGSL's sin/cos are only specified to 2⁻¹¹ on [−π, π], and SwiftShader's were off by
// up to 1.9e-4 at positions 7–8 (enough to move logits by 2e-3).
// Grid: one invocation per (row, pair of adjacent output elements) over q, then k, then v, so that an f16
// cache word is written whole by one invocation; for int8 the invocation at the start of each K or V head
// writes the whole head (its scale needs all of it), the others of that head return. 64 per workgroup,
// 2D-folded.

struct Params {
  tokens: u32,
  heads: u32,
  kvHeads: u32,
  headDim: u32,
  sequencesOffset: u32,   // u32 offsets into `tables`; rows start at 0
  pageTableOffset: u32,
}

override KV_FORMAT: u32 = 0u; // 0 f32, 1 f16, 2 int8 with a scale per token and head
const PAGE_TOKENS = 16u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cosSin: array<vec2f>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> tables: array<u32>;
@group(0) @binding(4) var<storage, read_write> q: array<vec2f>;
@group(0) @binding(5) var<storage, read_write> kCache: array<u32>;
@group(0) @binding(6) var<storage, read_write> vCache: array<u32>;

// Element e of the head starting at `head` in qkv, rotated for `position`.
fn rotated(head: u32, e: u32, position: u32) -> f32 {
  let half = params.headDim / 2u;
  let i = e % half;
  let rotation = cosSin[position * half + i];
  if (e < half) { return qkv[head + e] * rotation.x - qkv[head + e + half] * rotation.y; }
  return qkv[head + e] * rotation.x + qkv[head + e - half] * rotation.y;
}

fn store(cache: ptr<storage, array<u32>, read_write>, element: u32, value: vec2f) {
  if (KV_FORMAT == 1u) {
    (*cache)[element / 2u] = pack2x16float(value);
  } else {
    (*cache)[element] = bitcast<u32>(value.x);
    (*cache)[element + 1u] = bitcast<u32>(value.y);
  }
}

// Element e of a K head (rotated) or V head (as computed), starting at `source` in qkv.
fn kvValue(isKey: bool, source: u32, e: u32, position: u32) -> f32 {
  if (isKey) { return rotated(source, e, position); }
  return qkv[source + e];
}

fn storeInt8(isKey: bool, word: u32, value: u32) {
  if (isKey) { kCache[word] = value; } else { vCache[word] = value; }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  let qDim = params.heads * params.headDim;
  let kvDim = params.kvHeads * params.headDim;
  let wordsPerRow = (qDim + 2u * kvDim) / 2u;
  if (index >= params.tokens * wordsPerRow) { return; }
  let token = index / wordsPerRow;
  let element = 2u * (index % wordsPerRow); // first of the two, within the row's q|k|v
  let row = token * (qDim + 2u * kvDim);
  let position = tables[4u * token + 1u];

  if (element < qDim) {
    let head = row + (element / params.headDim) * params.headDim;
    let e = element % params.headDim;
    q[(token * qDim + element) / 2u] = vec2f(rotated(head, e, position), rotated(head, e + 1u, position));
    return;
  }
  let slot = tables[4u * token];
  let pageTableStart = tables[params.sequencesOffset + 4u * slot];
  let page = tables[params.pageTableOffset + pageTableStart + position / PAGE_TOKENS];
  let cacheRow = (page * PAGE_TOKENS + position % PAGE_TOKENS) * kvDim;
  if (KV_FORMAT == 2u) {
    let isKey = element < qDim + kvDim;
    let local = select(element - qDim - kvDim, element - qDim, isKey);
    if (local % params.headDim != 0u) { return; }
    let kvHead = local / params.headDim;
    let source = row + select(qDim + kvDim, qDim, isKey) + kvHead * params.headDim;
    let dim4 = params.headDim / 4u;
    let headWords = (page * PAGE_TOKENS + position % PAGE_TOKENS) * params.kvHeads * (dim4 + 1u) + kvHead * (dim4 + 1u);
    var largest = 0.0;
    for (var e = 0u; e < params.headDim; e++) { largest = max(largest, abs(kvValue(isKey, source, e, position))); }
    let inverse = select(0.0, 1.0 / largest, largest > 0.0);
    for (var i = 0u; i < dim4; i++) {
      let values = vec4f(kvValue(isKey, source, 4u * i, position), kvValue(isKey, source, 4u * i + 1u, position),
                         kvValue(isKey, source, 4u * i + 2u, position), kvValue(isKey, source, 4u * i + 3u, position));
      storeInt8(isKey, headWords + i, pack4x8snorm(values * inverse));
    }
    storeInt8(isKey, headWords + dim4, bitcast<u32>(largest));
    return;
  }
  if (element < qDim + kvDim) {
    let k = element - qDim;
    let head = row + qDim + (k / params.headDim) * params.headDim;
    let e = k % params.headDim;
    store(&kCache, cacheRow + k, vec2f(rotated(head, e, position), rotated(head, e + 1u, position)));
    return;
  }
  let v = element - qDim - kvDim;
  store(&vCache, cacheRow + v, vec2f(qkv[row + element], qkv[row + element + 1u]));
}
