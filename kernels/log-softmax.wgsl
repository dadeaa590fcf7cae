// Log-probabilities on the GPU, so scoring and OpenAI logprobs read back a few floats per row instead of a
// whole vocabulary row (Tri-7B: 513 KB). For each row r in [firstRow, firstRow + rows) of the logits, one
// workgroup of 256 lanes:
//   lse = max + ln Σ exp(logit − max)                    (the full-vocabulary softmax's normaliser)
//   out[outStart + i·targetsPerRow + j] = logit[target] − lse,  target = targets[targetStart + i·targetsPerRow + j]
//   (a target ≥ vocab is padding and gets 0)
//   top[topStart + i·topK + k] = (id, logprob) of the k-th largest logit, ties to the lower id, k < topK
// Top-k without sorting: pass k finds the largest element strictly after pass k−1's pick in the order
// (logit descending, id ascending), so topK ≤ 20 costs topK reads of the row.
// Lane l owns a contiguous chunk of the vocabulary; reductions are trees over the 256 lanes, so results
// do not depend on timing.

struct Params {
  vocab: u32,
  firstRow: u32,
  targetsPerRow: u32,
  targetStart: u32,
  outStart: u32,
  topK: u32,
  topStart: u32,
}

const LANES = 256u;
const NONE = 0xffffffffu;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> topIds: array<u32>;
@group(0) @binding(5) var<storage, read_write> topValues: array<f32>;

var<workgroup> values: array<f32, LANES>;
var<workgroup> ids: array<u32, LANES>;

// Whether (value a, id a) comes before (value b, id b): larger logit first, then lower id.
fn before(a: f32, aId: u32, b: f32, bId: u32) -> bool {
  return bId == NONE || a > b || (a == b && aId < bId);
}

fn reduceMax(lane: u32, value: f32) -> f32 {
  values[lane] = value;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) { values[lane] = max(values[lane], values[lane + stride]); }
    workgroupBarrier();
  }
  let result = values[0];
  workgroupBarrier();
  return result;
}

fn reduceSum(lane: u32, value: f32) -> f32 {
  values[lane] = value;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) { values[lane] += values[lane + stride]; }
    workgroupBarrier();
  }
  let result = values[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) group: vec3<u32>) {
  let i = group.x;
  let base = (params.firstRow + i) * params.vocab;
  let chunk = (params.vocab + LANES - 1u) / LANES;
  let start = min(lane * chunk, params.vocab);
  let end = min(start + chunk, params.vocab);

  var localMax = bitcast<f32>(0xff7fffffu); // the lowest finite f32
  for (var v = start; v < end; v++) { localMax = max(localMax, logits[base + v]); }
  let rowMax = reduceMax(lane, localMax);
  var localSum = 0.0;
  for (var v = start; v < end; v++) { localSum += exp(logits[base + v] - rowMax); }
  let lse = rowMax + log(reduceSum(lane, localSum));

  for (var j = lane; j < params.targetsPerRow; j += LANES) {
    let id = targets[params.targetStart + i * params.targetsPerRow + j];
    out[params.outStart + i * params.targetsPerRow + j] = select(0.0, logits[base + min(id, params.vocab - 1u)] - lse, id < params.vocab);
  }

  var previous = 0.0;
  var previousId = NONE;
  for (var k = 0u; k < params.topK; k++) {
    var best = 0.0;
    var bestId = NONE;
    for (var v = start; v < end; v++) {
      let value = logits[base + v];
      let afterPrevious = previousId == NONE || !before(value, v, previous, previousId);
      if (afterPrevious && v != previousId && before(value, v, best, bestId)) {
        best = value;
        bestId = v;
      }
    }
    values[lane] = best;
    ids[lane] = bestId;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
      if (lane < stride && ids[lane + stride] != NONE && before(values[lane + stride], ids[lane + stride], values[lane], ids[lane])) {
        values[lane] = values[lane + stride];
        ids[lane] = ids[lane + stride];
      }
      workgroupBarrier();
    }
    previous = values[0];
    previousId = ids[0];
    workgroupBarrier();
    if (lane == 0u) {
      topIds[params.topStart + i * params.topK + k] = previousId;
      topValues[params.topStart + i * params.topK + k] = select(0.0, previous - lse, previousId != NONE);
    }
  }
}
