// Bidirectional multi-head attention over every position of one image (the vision tower's; the language
// model's causal, paged attention is attention.wgsl):
//   out[t][h·D + d] = Σ_j softmax_j(q_t · k_j / √D) v_j[d]   with q, k, v the thirds of qkv[t] (q | k | v).
// One workgroup of 64 per (position, head): the lanes share the scores in workgroup memory (at most
// MAX_POSITIONS: CLIP-L at 336 px has 577), then each lane sums the values of its dimensions.
// Grid: positions · heads workgroups, 2D-folded.

struct Params {
  positions: u32,
  heads: u32,
  headDim: u32,
  scale: f32,
}

const MAX_POSITIONS = 1024u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> scores: array<f32, MAX_POSITIONS>;
var<workgroup> partial: array<f32, 64>;

fn reduce(value: f32, lane: u32, isMax: bool) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] = select(partial[lane] + partial[lane + stride], max(partial[lane], partial[lane + stride]), isMax);
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let item = group.x + group.y * groups.x;
  if (item >= params.positions * params.heads) { return; } // uniform per workgroup
  let t = item / params.heads;
  let head = item % params.heads;
  let width = params.heads * params.headDim;
  let q = t * 3u * width + head * params.headDim;

  var best = -3.4e38;
  for (var j = lane; j < params.positions; j += 64u) {
    let k = j * 3u * width + width + head * params.headDim;
    var dot = 0.0;
    for (var d = 0u; d < params.headDim; d++) { dot += qkv[q + d] * qkv[k + d]; }
    scores[j] = dot * params.scale;
    best = max(best, scores[j]);
  }
  best = reduce(best, lane, true);
  var sum = 0.0;
  for (var j = lane; j < params.positions; j += 64u) {
    scores[j] = exp(scores[j] - best);
    sum += scores[j];
  }
  sum = reduce(sum, lane, false); // its barriers also publish every lane's scores
  for (var d = lane; d < params.headDim; d += 64u) {
    var value = 0.0;
    for (var j = 0u; j < params.positions; j++) { value += scores[j] * qkv[j * 3u * width + 2u * width + head * params.headDim + d]; }
    out[t * width + head * params.headDim + d] = value / sum;
  }
}
