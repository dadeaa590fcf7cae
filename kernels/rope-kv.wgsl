// After the fused Q/K/V projection: rotate-half RoPE on q and k, and store k and v in the paged KV cache.
//   qkv [rows][heads·headDim + 2·kvHeads·headDim] (q, then k, then v of each row)
//   → q [rows][heads·headDim] rotated; K/V of row r go to its sequence's page for its position.
//   `tables` as in paged-attention.wgsl: row r = (sequence slot, position, …) at 4r, sequence σ's page
//   table offset at sequencesOffset + 4σ; kCache/vCache [page][KV_PAGE_TOKENS][kvHeads·headDim].
// For each pair (x[i], x[i+d/2]) at the row's position p: (x[i]·cos − x[i+d/2]·sin, x[i+d/2]·cos + x[i]·sin),
// cos/sin from a CPU-computed table [position][headDim/2] (WGSL's sin/cos are only specified to 2⁻¹¹
// on [−π, π]; SwiftShader's were 1.9e-4 off at positions 7–8, enough to move logits by 2e-3).
// Grid: one invocation per (row, pair) over q pairs, then k pairs, then v pairs; 64 per workgroup, 2D-folded.

struct Params {
  tokens: u32,
  heads: u32,
  kvHeads: u32,
  headDim: u32,
  sequencesOffset: u32,   // u32 offsets into `tables`; rows start at 0
  pageTableOffset: u32,
}

const PAGE_TOKENS = 16u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cosSin: array<vec2f>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> tables: array<u32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> kCache: array<f32>;
@group(0) @binding(6) var<storage, read_write> vCache: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  let half = params.headDim / 2u;
  let qPairs = params.heads * half;
  let kvPairs = params.kvHeads * half;
  let pairsPerToken = qPairs + 2u * kvPairs;
  if (index >= params.tokens * pairsPerToken) { return; }
  let token = index / pairsPerToken;
  var pair = index % pairsPerToken;
  let qDim = params.heads * params.headDim;
  let kvDim = params.kvHeads * params.headDim;
  let row = token * (qDim + 2u * kvDim);
  let slot = tables[4u * token];
  let position = tables[4u * token + 1u];
  let pageTableStart = tables[params.sequencesOffset + 4u * slot];
  let page = tables[params.pageTableOffset + pageTableStart + position / PAGE_TOKENS];
  let cacheRow = (page * PAGE_TOKENS + position % PAGE_TOKENS) * kvDim;

  if (pair >= qPairs + kvPairs) { // v: a plain copy of two elements
    pair -= qPairs + kvPairs;
    let head = pair / half;
    let i = pair % half;
    let readAt = row + qDim + kvDim + head * params.headDim + i;
    let writeAt = cacheRow + head * params.headDim + i;
    vCache[writeAt] = qkv[readAt];
    vCache[writeAt + half] = qkv[readAt + half];
    return;
  }
  let isKey = pair >= qPairs;
  if (isKey) { pair -= qPairs; }
  let head = pair / half;
  let i = pair % half;
  let rotation = cosSin[position * half + i];
  let readAt = row + select(0u, qDim, isKey) + head * params.headDim + i;
  let x1 = qkv[readAt];
  let x2 = qkv[readAt + half];
  let r1 = x1 * rotation.x - x2 * rotation.y;
  let r2 = x2 * rotation.x + x1 * rotation.y;
  if (isKey) {
    let writeAt = cacheRow + head * params.headDim + i;
    kCache[writeAt] = r1;
    kCache[writeAt + half] = r2;
  } else {
    let writeAt = token * qDim + head * params.headDim + i;
    q[writeAt] = r1;
    q[writeAt + half] = r2;
  }
}
