// RMSNorm: y[r][i] = weight[i] · x[r][i] / sqrt(mean_i(x[r][i]²) + eps)
// Grid: one workgroup per row r (2D-folded); 64 invocations reduce the sum of squares.

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  xOffset: u32,   // elements, where row 0 starts (lets the final norm take only the last token)
}

const WORKGROUP_SIZE = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = group.x + group.y * groups.x;
  let inRange = row < params.rows;
  let base = params.xOffset + row * params.dim;
  var sum = 0.0;
  if (inRange) {
    for (var i = lane; i < params.dim; i += WORKGROUP_SIZE) {
      let v = x[base + i];
      sum += v * v;
    }
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) { partial[lane] += partial[lane + stride]; }
    workgroupBarrier();
  }
  if (!inRange) { return; }
  let inverse = inverseSqrt(partial[0] / f32(params.dim) + params.eps);
  for (var i = lane; i < params.dim; i += WORKGROUP_SIZE) {
    y[row * params.dim + i] = weight[i] * (x[base + i] * inverse);
  }
}
