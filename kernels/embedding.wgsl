// Embedding gather from a table in a GPU weight format (src/model/quant.ts; rows = vocabulary):
//   y[t][i] = table[tokenIds[t]][i], dequantized to f32.
// A table split into parts is gathered part by part: each dispatch writes the tokens whose id falls
// in [rowStart, rowStart + rows) and leaves the others alone.
// Grid: one invocation per output element, 64 per workgroup, 2D-folded.

struct Params {
  tokens: u32,
  hidden: u32,
  paddedN: u32,    // the part's rows rounded up to 4 (word stride)
  rowStart: u32,   // first token id held by this part
  rows: u32,
}

override FORMAT: u32 = 0u;       // 0 f32, 1 f16, 2 q4
override GROUP_SIZE: u32 = 32u;
override HAS_MIN: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> tokenIds: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn half(word: u32, high: bool) -> f32 {
  return unpack2x16float(select(word, word >> 16u, high)).x;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  if (index >= params.tokens * params.hidden) { return; }
  let t = index / params.hidden;
  let i = index % params.hidden;
  let token = tokenIds[t];
  if (token < params.rowStart || token >= params.rowStart + params.rows) { return; }
  let row = token - params.rowStart;
  var value: f32;
  if (FORMAT == 0u) {
    value = bitcast<f32>(table[i * params.paddedN + row]);
  } else if (FORMAT == 1u) {
    value = half(table[(i / 2u) * params.paddedN + row], i % 2u == 1u);
  } else {
    let q = f32((table[(i / 8u) * params.paddedN + row] >> (4u * (i % 8u))) & 15u);
    let halfN = params.paddedN / 2u;
    let g = i / GROUP_SIZE;
    let scale = half(scales[g * halfN + row / 2u], row % 2u == 1u);
    if (HAS_MIN) {
      let groups = (params.hidden + GROUP_SIZE - 1u) / GROUP_SIZE;
      value = q * scale + half(scales[(groups + g) * halfN + row / 2u], row % 2u == 1u);
    } else {
      value = (q - 8.0) * scale;
    }
  }
  y[index] = value;
}
