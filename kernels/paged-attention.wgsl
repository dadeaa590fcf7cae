// Attention over the paged KV cache for a batch of query rows from several sequences, with document masks
// (DESIGN.md §1): query row r (sequence σ, position t, document d) attends key j of σ iff j ≤ t and j's
// document e is d or in d's visibility set. The mask is never materialised: each invocation walks the
// document ranges and skips, whole, every document it may not see; within a visible range it walks keys
// page by page (KV_PAGE_TOKENS per page) through σ's page table. Online softmax (flash-attention style)
// in registers; a row that sees no key gets zeros, never NaN.
//   kCache/vCache [page][KV_PAGE_TOKENS][kvHeads·headDim] as f32, f16 pairs or, for int8, per head
//   headDim/4 words of four int8 then one f32 scale (rope-kv.wgsl);  q, out [rows][heads·headDim]
// The batch's tables share one u32 buffer (WebGPU guarantees only 8 storage buffers per stage), at the
// offsets in Params (src/ops/batch-tables.ts):
//   row r = (sequence slot, position, document, 0)
//   sequence σ = (page table offset, kv length, first document, document count)
//   document i = (start, end, visible mask over the sequence's earlier documents, 0)
// Split-KV (flash-decoding): SPLITS > 1 splits each sequence's positions into SPLITS ranges, one
// invocation each, writing (unnormalised sum, max, total) to `partials`; attention-reduce.wgsl combines
// them. Decode uses it to spread one token's keys over many invocations; prefill runs SPLITS = 1.
// Grid: one invocation per (row, head, split), 64 per workgroup, 2D-folded. No barriers.
// Measured (bench/kernels.bench.ts, decode over 2048 positions, split-KV 16, K+V bytes read, f32 cache):
// 0.38–0.62 of the copy kernel in Node, 0.60–0.61 in Chromium (SwiftShader, two runs) with vec2u loads;
// with the u32 loads that the int8 layout needs, 0.58–0.78 in Node and 0.40–0.46 in Chromium (one run,
// 2026-12-02; Chromium's copy kernel ran faster that run, 3.0 GB/s against 2.6–2.9).

struct Params {
  rows: u32,
  heads: u32,
  kvHeads: u32,
  headDim: u32,
  scale: f32,
  sequencesOffset: u32,   // u32 offsets into `tables`; rows start at 0
  pageTableOffset: u32,
  documentsOffset: u32,
}

override SPLITS: u32 = 1u;
override KV_FORMAT: u32 = 0u;   // K/V as f32 (0), f16 pairs packed in u32 (1) or int8 with a scale per head (2)
const PAGE_TOKENS = 16u;
const MAX_HEAD_DIM_VEC4 = 32u; // head_dim ≤ 128

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4f>;
@group(0) @binding(2) var<storage, read> tables: array<u32>;
@group(0) @binding(3) var<storage, read> kCache: array<u32>;
@group(0) @binding(4) var<storage, read> vCache: array<u32>;
@group(0) @binding(5) var<storage, read_write> partials: array<vec4f>; // SPLITS > 1: [rows·heads·SPLITS][headDim/4 + 1]
@group(0) @binding(6) var<storage, read_write> out: array<vec4f>;

// Where a token's head starts in the cache, in u32 words (int8 rows hold a scale word per head).
fn headWord(token: u32, kvHead: u32) -> u32 {
  let dim4 = params.headDim / 4u;
  if (KV_FORMAT == 2u) { return (token * params.kvHeads + kvHead) * (dim4 + 1u); }
  let words = select(4u, 2u, KV_FORMAT == 1u); // per four values
  return (token * params.kvHeads + kvHead) * dim4 * words;
}

// Values 4·i .. 4·i + 3 of the head at `head` (int8: before its scale).
fn load4(cache: ptr<storage, array<u32>, read>, head: u32, i: u32) -> vec4f {
  if (KV_FORMAT == 2u) { return unpack4x8snorm((*cache)[head + i]); }
  if (KV_FORMAT == 1u) { return vec4f(unpack2x16float((*cache)[head + 2u * i]), unpack2x16float((*cache)[head + 2u * i + 1u])); }
  let at = head + 4u * i;
  return bitcast<vec4f>(vec4u((*cache)[at], (*cache)[at + 1u], (*cache)[at + 2u], (*cache)[at + 3u]));
}

fn headScale(cache: ptr<storage, array<u32>, read>, head: u32) -> f32 {
  if (KV_FORMAT == 2u) { return bitcast<f32>((*cache)[head + params.headDim / 4u]); }
  return 1.0;
}

fn entry(offset: u32, index: u32) -> vec4u {
  let at = offset + 4u * index;
  return vec4u(tables[at], tables[at + 1u], tables[at + 2u], tables[at + 3u]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  if (index >= params.rows * params.heads * SPLITS) { return; }
  let split = index % SPLITS;
  let head = (index / SPLITS) % params.heads;
  let r = index / (SPLITS * params.heads);
  let row = entry(0u, r);
  let sequence = entry(params.sequencesOffset, row.x);
  let position = row.y;
  let visible = entry(params.documentsOffset, sequence.z + row.z).z;
  let dim4 = params.headDim / 4u;
  let kvHead = head / (params.heads / params.kvHeads);

  var query = array<vec4f, MAX_HEAD_DIM_VEC4>();
  let qBase = (r * params.heads + head) * dim4;
  for (var i = 0u; i < dim4; i++) { query[i] = q[qBase + i] * params.scale; }

  // This split's share of the sequence's positions, cut at the causal limit.
  let chunk = (sequence.y + SPLITS - 1u) / SPLITS;
  let lo = split * chunk;
  let hi = min(min((split + 1u) * chunk, sequence.y), position + 1u);

  var acc = array<vec4f, MAX_HEAD_DIM_VEC4>();
  var runningMax = -3.4e38; // finite sentinel: WGSL does not guarantee -inf
  var total = 0.0;
  for (var e = 0u; e < sequence.w; e++) {
    if (e != row.z && ((visible >> e) & 1u) == 0u) { continue; } // a masked document: skipped whole
    let document = entry(params.documentsOffset, sequence.z + e);
    for (var j = max(document.x, lo); j < min(document.y, hi); j++) {
      let page = tables[params.pageTableOffset + sequence.x + j / PAGE_TOKENS];
      let base = headWord(page * PAGE_TOKENS + j % PAGE_TOKENS, kvHead);
      var score = 0.0;
      for (var i = 0u; i < dim4; i++) { score += dot(query[i], load4(&kCache, base, i)); }
      score *= headScale(&kCache, base);
      let newMax = max(runningMax, score);
      let correction = exp(runningMax - newMax);
      let weight = exp(score - newMax);
      total = total * correction + weight;
      let valueWeight = weight * headScale(&vCache, base);
      for (var i = 0u; i < dim4; i++) { acc[i] = acc[i] * correction + load4(&vCache, base, i) * valueWeight; }
      runningMax = newMax;
    }
  }

  if (SPLITS == 1u) {
    let inverse = select(0.0, 1.0 / total, total > 0.0);
    for (var i = 0u; i < dim4; i++) { out[qBase + i] = acc[i] * inverse; }
    return;
  }
  let partialBase = ((r * params.heads + head) * SPLITS + split) * (dim4 + 1u);
  for (var i = 0u; i < dim4; i++) { partials[partialBase + i] = acc[i]; }
  partials[partialBase + dim4] = vec4f(runningMax, total, 0.0, 0.0);
}
