// f32 matmul: y[m][n] (+)= Σ_k x[m][k] · W[n][k]   (W row-major [N][K], the HF Linear layout)
// Grid: one invocation per (output column n, block of ROWS_PER_THREAD rows of x), 64 per workgroup,
// 2D-folded past 65,535 workgroups. Each invocation walks its row of W once, so one read of W[n][k]
// serves ROWS_PER_THREAD rows of x. No workgroup barriers: on SwiftShader a 64-wide tree reduction
// cost ~64 µs per workgroup (4096×256 GEMV: 262 ms); this barrier-free form is ~27× faster there.
// Walking-skeleton kernel: any N, any K that is a multiple of 4 (e.g. 172); the fast q4/f16 kernels
// replace it. Measured on SwiftShader (2 cores): 4096×256 GEMV 9.6 ms (~0.4 GB/s), scalar loads 15.8 ms.
// `accumulate` = 1 adds into y (folds the residual add into the output projection).

struct Params {
  m: u32,
  n: u32,
  k: u32,
  xOffset: u32,   // elements
  yOffset: u32,   // elements; y row stride is n
  accumulate: u32,
}

const WORKGROUP_SIZE = 64u;
const ROWS_PER_THREAD = 4u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * WORKGROUP_SIZE;
  let n = index % params.n;
  let firstRow = (index / params.n) * ROWS_PER_THREAD;
  if (firstRow >= params.m) { return; }
  let rows = min(ROWS_PER_THREAD, params.m - firstRow);

  // K, xOffset are multiples of 4 (checked on the host), so rows are read as vec4.
  let k4 = params.k / 4u;
  var sums = array<vec4f, ROWS_PER_THREAD>();
  let wBase = n * k4;
  let xBase = params.xOffset / 4u + firstRow * k4;
  for (var k = 0u; k < k4; k++) {
    let weight = w[wBase + k];
    for (var r = 0u; r < rows; r++) {
      sums[r] += weight * x[xBase + r * k4 + k];
    }
  }
  for (var r = 0u; r < rows; r++) {
    let out = params.yOffset + (firstRow + r) * params.n + n;
    var value = dot(sums[r], vec4f(1.0));
    if (params.accumulate != 0u) { value += y[out]; }
    y[out] = value;
  }
}
