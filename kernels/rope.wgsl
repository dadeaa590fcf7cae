// Rotate-half RoPE (HF Llama), in place: for each token t, head h and i < headDim/2, at p = startPos + t:
//   (x[i], x[i+d/2]) ← (x[i]·cos − x[i+d/2]·sin, x[i+d/2]·cos + x[i]·sin),  angle = p · invFreq[i]
// cos/sin come from a table [position][headDim/2] of vec2 (cos, sin) computed once on the CPU with the
// configured scaling: WGSL's sin/cos are only specified to 2⁻¹¹ on [−π, π] and are unbounded beyond, and
// SwiftShader's were off by up to 1.9e-4 at positions 7–8 (enough to move logits by 2e-3).
// Grid: one invocation per (t, h, i), 64 per workgroup, 2D-folded.

struct Params {
  tokens: u32,
  heads: u32,
  headDim: u32,
  startPos: u32,
  offset: u32,      // elements, where token 0 starts (the KV cache slot of startPos)
  rowStride: u32,   // elements between consecutive tokens
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cosSin: array<vec2f>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  let half = params.headDim / 2u;
  if (index >= params.tokens * params.heads * half) { return; }
  let i = index % half;
  let head = (index / half) % params.heads;
  let token = index / (half * params.heads);
  let rotation = cosSin[(params.startPos + token) * half + i];
  let c = rotation.x;
  let s = rotation.y;
  let a = params.offset + token * params.rowStride + head * params.headDim + i;
  let x1 = x[a];
  let x2 = x[a + half];
  x[a] = x1 * c - x2 * s;
  x[a + half] = x2 * c + x1 * s;
}
