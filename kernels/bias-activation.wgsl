// In place: y[r][i] = act(y[r][i] + bias[i]), or with a bias per row (BIAS_PER_ROW) bias[r][i]: the
// biases of the vision tower's linears (linear.wgsl has none), its MLP activation, and the CLS and
// position embeddings added to the patch rows.
//   ACTIVATION 0: none; 1: quick_gelu x·σ(1.702x) (CLIP); 2: gelu 0.5x(1 + erf(x/√2)) (the projector).
// erf to within 1.2e-7 (the fit of src/reference/llava-vision.ts; WGSL has no erf).
// Grid: one invocation per element, 64 per workgroup, 2D-folded.

struct Params {
  rows: u32,
  width: u32,
}

override ACTIVATION: u32 = 0u;
override BIAS_PER_ROW: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn erf(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let erfc = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(erfc - 1.0, 1.0 - erfc, x >= 0.0);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  if (index >= params.rows * params.width) { return; }
  let value = y[index] + bias[select(index % params.width, index, BIAS_PER_ROW)];
  if (ACTIVATION == 1u) {
    y[index] = value / (1.0 + exp(-1.702 * value));
  } else if (ACTIVATION == 2u) {
    y[index] = 0.5 * value * (1.0 + erf(value * 0.70710678));
  } else {
    y[index] = value;
  }
}
