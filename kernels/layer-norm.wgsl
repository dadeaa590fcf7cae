// LayerNorm of each row (the vision tower's; the language model uses RMSNorm fused into linear.wgsl):
//   y[r][i] = (x[r][i] − mean_r) / sqrt(var_r + eps) · weight[i] + bias[i]
// Mean first, then the variance of the centred values (two passes: no cancellation in E[x²] − E[x]²).
// Grid: one workgroup of 64 per row, 2D-folded; a row's sums are reduced in workgroup memory.

struct Params {
  rows: u32,
  width: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 64>;

fn rowSum(value: f32, lane: u32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride /= 2u) {
    if (lane < stride) { partial[lane] += partial[lane + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // everyone has read it before the next sum overwrites it
  return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = group.x + group.y * groups.x;
  if (row >= params.rows) { return; } // uniform per workgroup: the barriers below stay uniform
  let base = row * params.width;
  var sum = 0.0;
  for (var i = lane; i < params.width; i += 64u) { sum += x[base + i]; }
  let mean = rowSum(sum, lane) / f32(params.width);
  var squares = 0.0;
  for (var i = lane; i < params.width; i += 64u) {
    let centred = x[base + i] - mean;
    squares += centred * centred;
  }
  let inverse = inverseSqrt(rowSum(squares, lane) / f32(params.width) + params.eps);
  for (var i = lane; i < params.width; i += 64u) {
    y[base + i] = (x[base + i] - mean) * inverse * weight[i] + bias[i];
  }
}
