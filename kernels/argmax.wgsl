// Greedy pick: result[0] = argmax_i values[offset + i] over `count` values; ties go to the lowest
// index, as torch.argmax. One workgroup of 256; only this one u32 is ever read back per token.

struct Params {
  count: u32,
  offset: u32,
}

const WORKGROUP_SIZE = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;

var<workgroup> bestValue: array<f32, WORKGROUP_SIZE>;
var<workgroup> bestIndex: array<u32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lane: u32) {
  // Finite sentinel: WGSL does not guarantee -inf.
  var value = -3.4e38;
  var index = 0xffffffffu;
  for (var i = lane; i < params.count; i += WORKGROUP_SIZE) {
    let v = values[params.offset + i];
    if (v > value) { value = v; index = i; }
  }
  bestValue[lane] = value;
  bestIndex[lane] = index;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let otherValue = bestValue[lane + stride];
      let otherIndex = bestIndex[lane + stride];
      if (otherValue > bestValue[lane] || (otherValue == bestValue[lane] && otherIndex < bestIndex[lane])) {
        bestValue[lane] = otherValue;
        bestIndex[lane] = otherIndex;
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u) { result[0] = select(bestIndex[0], 0u, bestIndex[0] == 0xffffffffu); }
}
