// Embedding gather: y[t][i] = table[tokens[t]][i]   (table row-major [vocab][hidden], f32)
// Grid: one invocation per output element, 64 per workgroup, 2D-folded.

struct Params {
  tokens: u32,
  hidden: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> tokenIds: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  if (index >= params.tokens * params.hidden) { return; }
  let t = index / params.hidden;
  let i = index % params.hidden;
  y[index] = table[tokenIds[t] * params.hidden + i];
}
