// y[i] = x[rowIds[i]] for `count` rows of `width` values: the last row of each sequence in a batch,
// packed together so the output head runs once over just those rows.
// Grid: one invocation per output vec4, 64 per workgroup, 2D-folded.

struct Params {
  count: u32,
  width: u32,   // a multiple of 4
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> rowIds: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  let width4 = params.width / 4u;
  if (index >= params.count * width4) { return; }
  let i = index / width4;
  y[index] = x[rowIds[i] * width4 + index % width4];
}
