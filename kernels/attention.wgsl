// Causal attention over a contiguous KV cache (walking skeleton; the paged, tiled XLDA kernels replace it).
// For query token t (absolute position startPos + t) and head h, with kvHead = h / (heads / kvHeads):
//   out[t][h] = Σ_{j ≤ startPos+t} softmax_j(q[t][h] · k[j][kvHead] · scale) · v[j][kvHead]
// Layouts: q, out [tokens][heads·headDim]; kCache, vCache [position][kvHeads·headDim];
// scores is scratch [tokens·heads][scoreStride] (scoreStride ≥ startPos + tokens).
// Grid: one workgroup of 64 per (t, h), 2D-folded. Three passes over positions: scores + max, exp + sum,
// then each invocation owns output dimensions d and sums over positions.

struct Params {
  tokens: u32,
  heads: u32,
  kvHeads: u32,
  headDim: u32,
  startPos: u32,
  scoreStride: u32,
  scale: f32,
}

const WORKGROUP_SIZE = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kCache: array<f32>;
@group(0) @binding(3) var<storage, read> vCache: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn reduceMax(lane: u32, value: f32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) { partial[lane] = max(partial[lane], partial[lane + stride]); }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

fn reduceSum(lane: u32, value: f32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) { partial[lane] += partial[lane + stride]; }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let linear = group.x + group.y * groups.x;
  // Uniform control flow is needed for the barriers, so out-of-range groups run with length 0.
  let inRange = linear < params.tokens * params.heads;
  let token = linear / params.heads;
  let head = linear % params.heads;
  let length = select(0u, params.startPos + token + 1u, inRange);
  let kvDim = params.kvHeads * params.headDim;
  let kvBase = (head / (params.heads / params.kvHeads)) * params.headDim;
  let qBase = token * params.heads * params.headDim + head * params.headDim;
  let scoreBase = linear * params.scoreStride;

  var localMax = -3.4e38;
  for (var j = lane; j < length; j += WORKGROUP_SIZE) {
    var dot = 0.0;
    for (var d = 0u; d < params.headDim; d++) { dot += q[qBase + d] * kCache[j * kvDim + kvBase + d]; }
    let s = dot * params.scale;
    scores[scoreBase + j] = s;
    localMax = max(localMax, s);
  }
  let rowMax = reduceMax(lane, localMax);

  var localSum = 0.0;
  for (var j = lane; j < length; j += WORKGROUP_SIZE) {
    let e = exp(scores[scoreBase + j] - rowMax);
    scores[scoreBase + j] = e;
    localSum += e;
  }
  let rowSum = reduceSum(lane, localSum);
  storageBarrier();

  if (!inRange) { return; }
  for (var d = lane; d < params.headDim; d += WORKGROUP_SIZE) {
    var acc = 0.0;
    for (var j = 0u; j < length; j++) { acc += scores[scoreBase + j] * vCache[j * kvDim + kvBase + d]; }
    out[qBase + d] = acc / rowSum;
  }
}
