// Combines the split-KV partial results of paged-attention.wgsl (flash-decoding's reduce pass):
//   out = Σ_s e^(m_s − M)·acc_s / Σ_s e^(m_s − M)·l_s,  M = max over splits that saw a key.
// A row whose splits saw no key gets zeros. Grid: one invocation per (row, head, 4 output dims).

struct Params {
  rows: u32,
  heads: u32,
  headDim: u32,
  splits: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  let dim4 = params.headDim / 4u;
  if (index >= params.rows * params.heads * dim4) { return; }
  let i = index % dim4;
  let rowHead = index / dim4;
  let stride = dim4 + 1u;
  let first = rowHead * params.splits * stride;
  var maximum = -3.4e38;
  for (var s = 0u; s < params.splits; s++) {
    let stats = partials[first + s * stride + dim4];
    if (stats.y > 0.0) { maximum = max(maximum, stats.x); }
  }
  var sum = vec4f(0.0);
  var total = 0.0;
  for (var s = 0u; s < params.splits; s++) {
    let stats = partials[first + s * stride + dim4];
    if (stats.y > 0.0) {
      let weight = exp(stats.x - maximum);
      sum += partials[first + s * stride + i] * weight;
      total += stats.y * weight;
    }
  }
  out[rowHead * dim4 + i] = select(vec4f(0.0), sum / total, total > 0.0);
}
