// Picks the next token on the GPU from logits[offset .. offset + vocab); only the id is read back.
// Order as Hugging Face's generate(): repetition penalty (logit > 0 ? logit / p : logit · p, once per
// token id present in `seen`), then OpenAI's frequency and presence penalties (logit − count·f − p for
// a token generated `count` > 0 times, as vLLM and llama.cpp order them; `counts` is read only when
// either is on), then temperature, top-k, top-p, min-p, then a draw from the kept tokens
// with a counter-based RNG (PCG hash of seed and step): the same seed and step give the same token.
// temperature = 0 is greedy: argmax after the penalty, ties to the lowest id (as torch.argmax).
// Thresholds are found without sorting: top-k and top-p by bisection over the 32-bit order-preserving
// key of the f32 values (32 counting passes each, only when enabled), min-p directly (max + ln minP).
// Ties at a top-k threshold keep all tied tokens.
// Grid: one workgroup of 256 per sampled row, all rows of a step in one dispatch, each with its own
// settings (rows[workgroup]); lane l owns a contiguous chunk of the vocabulary, so partial sums are
// ordered and the draw is deterministic. Reductions: lane 0 adds 256 partials (2 barriers each), or one
// per subgroup where the device has subgroups (the two variants of this file: src/gpu/shader-variants.ts).
// With recordDraw = 1 the drawn token also joins the sequence's state on the GPU: its bit in `seen`, its
// count in `counts`, and lastIds[stateSlot], which the next step's embedding reads. Decode then never
// waits for the id to reach the CPU, and no bit set is uploaded per token (Tri-7B: 16 KB per sequence).

struct Params {
  vocab: u32,
}

// One sampled row's settings (src/ops/sample.ts packs them, 16 u32 each).
struct SampleRow {
  offset: u32,          // where its logits start
  resultIndex: u32,     // result[resultIndex] ← the token
  topK: u32,            // 0 = off
  temperature: f32,     // 0 = greedy
  topP: f32,            // 1 = off
  minP: f32,            // 0 = off
  repetitionPenalty: f32, // 1 = off
  seed: u32,
  step: u32,
  frequencyPenalty: f32, // 0 = off
  presencePenalty: f32,  // 0 = off
  recordDraw: u32,       // when 1, the drawn token joins seen, counts and lastIds[stateSlot]
  stateSlot: u32,
  seenStart: u32,        // the u32 where its seen bits start
  countsStart: u32,      // the u32 where its counts start
  unused: u32,
}

const LANES = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> seen: array<u32>;   // bit i: token i is in the context
@group(0) @binding(3) var<storage, read_write> result: array<u32>;
@group(0) @binding(4) var<storage, read_write> counts: array<u32>; // times token i was generated
@group(0) @binding(5) var<storage, read_write> lastIds: array<u32>; // per state slot: the last drawn token
@group(0) @binding(6) var<storage, read> rows: array<SampleRow>;

var<workgroup> partials: array<f32, LANES>;
var<workgroup> partialIndex: array<u32, LANES>;
var<workgroup> broadcastValue: f32;
var<workgroup> chosenLane: u32;
var<workgroup> remainder: f32;

fn adjusted(row: SampleRow, i: u32) -> f32 {
  var value = logits[row.offset + i];
  if (row.repetitionPenalty != 1.0 && ((seen[row.seenStart + i / 32u] >> (i % 32u)) & 1u) == 1u) {
    value = select(value * row.repetitionPenalty, value / row.repetitionPenalty, value > 0.0);
  }
  if (row.frequencyPenalty != 0.0 || row.presencePenalty != 0.0) {
    let count = counts[row.countsStart + i];
    if (count > 0u) { value = (value - f32(count) * row.frequencyPenalty) - row.presencePenalty; }
  }
  if (row.temperature > 0.0) { value = value / row.temperature; }
  return value;
}

// Order-preserving map of f32 to u32: a < b ⇔ key(a) < key(b).
fn key(value: f32) -> u32 {
  let bits = bitcast<u32>(value);
  return select(~bits, bits | 0x80000000u, (bits & 0x80000000u) == 0u);
}

fn pcgHash(input: u32) -> u32 {
  let state = input * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

//#if subgroups
// Reductions by subgroups: a subgroup combines its lanes in registers and its first lane writes one
// partial, so lane 0 reads LANES / subgroup size partials instead of LANES (SwiftShader: 64; most GPUs 8).
// Subgroups are taken to be runs of consecutive lanes, in order (GpuLlama checks the draws at load).
// The argmax gives the same token as the version below (ties to the lowest id either way); sums add in
// another order, so they agree to rounding.
struct Invocation {
  @builtin(local_invocation_index) lane: u32,
  @builtin(subgroup_invocation_id) subgroupLane: u32,
  @builtin(subgroup_size) subgroupSize: u32,
}

fn reduceSum(me: Invocation, value: f32) -> f32 {
  let subgroupTotal = subgroupAdd(value);
  if (me.subgroupLane == 0u) { partials[me.lane / me.subgroupSize] = subgroupTotal; }
  workgroupBarrier();
  if (me.lane == 0u) {
    var sum = 0.0;
    for (var j = 0u; j < LANES / me.subgroupSize; j++) { sum += partials[j]; }
    broadcastValue = sum;
  }
  workgroupBarrier();
  return broadcastValue;
}

fn reduceMax(me: Invocation, value: f32) -> f32 {
  let subgroupBest = subgroupMax(value);
  if (me.subgroupLane == 0u) { partials[me.lane / me.subgroupSize] = subgroupBest; }
  workgroupBarrier();
  if (me.lane == 0u) {
    var best = partials[0];
    for (var j = 1u; j < LANES / me.subgroupSize; j++) { best = max(best, partials[j]); }
    broadcastValue = best;
  }
  workgroupBarrier();
  return broadcastValue;
}

// The index of the largest value, the lowest index among equals; the result is lane 0's.
fn reduceArgmax(me: Invocation, value: f32, index: u32) -> u32 {
  let subgroupBest = subgroupMax(value);
  let subgroupIndex = subgroupMin(select(0xffffffffu, index, value == subgroupBest));
  if (me.subgroupLane == 0u) {
    partials[me.lane / me.subgroupSize] = subgroupBest;
    partialIndex[me.lane / me.subgroupSize] = subgroupIndex;
  }
  workgroupBarrier();
  var best = partials[0];
  var bestIndex = partialIndex[0];
  if (me.lane == 0u) {
    for (var j = 1u; j < LANES / me.subgroupSize; j++) {
      if (partials[j] > best) { best = partials[j]; bestIndex = partialIndex[j]; }
    }
  }
  return bestIndex;
}
//#else
struct Invocation {
  @builtin(local_invocation_index) lane: u32,
}

fn reduceSum(me: Invocation, value: f32) -> f32 {
  partials[me.lane] = value;
  workgroupBarrier();
  if (me.lane == 0u) {
    var sum = 0.0;
    for (var j = 0u; j < LANES; j++) { sum += partials[j]; }
    broadcastValue = sum;
  }
  workgroupBarrier();
  return broadcastValue;
}

fn reduceMax(me: Invocation, value: f32) -> f32 {
  partials[me.lane] = value;
  workgroupBarrier();
  if (me.lane == 0u) {
    var best = partials[0];
    for (var j = 1u; j < LANES; j++) { best = max(best, partials[j]); }
    broadcastValue = best;
  }
  workgroupBarrier();
  return broadcastValue;
}

// The index of the largest value, the lowest index among equals (lanes own ascending chunks); the
// result is lane 0's.
fn reduceArgmax(me: Invocation, value: f32, index: u32) -> u32 {
  partials[me.lane] = value;
  partialIndex[me.lane] = index;
  workgroupBarrier();
  var best = partials[0];
  var bestIndex = partialIndex[0];
  if (me.lane == 0u) {
    for (var j = 1u; j < LANES; j++) {
      if (partials[j] > best) { best = partials[j]; bestIndex = partialIndex[j]; }
    }
  }
  return bestIndex;
}
//#endif

// Called by the one invocation that draws, after every lane has finished reading seen and counts.
fn choose(row: SampleRow, token: u32) {
  result[row.resultIndex] = token;
  if (row.recordDraw == 1u) {
    seen[row.seenStart + token / 32u] |= 1u << (token % 32u);
    counts[row.countsStart + token] += 1u;
    lastIds[row.stateSlot] = token;
  }
}

@compute @workgroup_size(LANES)
fn main(me: Invocation, @builtin(workgroup_id) group: vec3u) {
  let lane = me.lane;
  let row = rows[group.x];
  let chunk = (params.vocab + LANES - 1u) / LANES;
  let first = min(lane * chunk, params.vocab);
  let end = min(first + chunk, params.vocab);

  if (row.temperature <= 0.0) {
    var bestValue = -3.4e38; // finite sentinel: WGSL does not guarantee -inf
    var bestIndex = 0xffffffffu;
    for (var i = first; i < end; i++) {
      let value = adjusted(row, i);
      if (value > bestValue) { bestValue = value; bestIndex = i; }
    }
    let index = reduceArgmax(me, bestValue, bestIndex);
    if (lane == 0u) { choose(row, select(index, 0u, index == 0xffffffffu)); }
    return;
  }

  var localMax = -3.4e38;
  for (var i = first; i < end; i++) { localMax = max(localMax, adjusted(row, i)); }
  let maximum = reduceMax(me, localMax);

  // Kept tokens: key(adjusted) ≥ threshold.
  var threshold = 0u;
  if (row.topK > 0u && row.topK < params.vocab) {
    // The largest key t with count(key ≥ t) ≥ topK, built bit by bit: the topK-th largest value.
    for (var bit = 31; bit >= 0; bit--) {
      let candidate = threshold | (1u << u32(bit));
      var count = 0.0;
      for (var i = first; i < end; i++) { if (key(adjusted(row, i)) >= candidate) { count += 1.0; } }
      if (reduceSum(me, count) >= f32(row.topK)) { threshold = candidate; }
    }
  }
  if (row.topP < 1.0) {
    var localMass = 0.0;
    for (var i = first; i < end; i++) {
      let value = adjusted(row, i);
      if (key(value) >= threshold) { localMass += exp(value - maximum); }
    }
    let needed = row.topP * reduceSum(me, localMass);
    // The largest t whose kept mass still reaches topP of the total: the smallest top set with mass ≥ topP.
    var topPThreshold = 0u;
    for (var bit = 31; bit >= 0; bit--) {
      let candidate = topPThreshold | (1u << u32(bit));
      let cut = max(candidate, threshold);
      var mass = 0.0;
      for (var i = first; i < end; i++) {
        let value = adjusted(row, i);
        if (key(value) >= cut) { mass += exp(value - maximum); }
      }
      if (reduceSum(me, mass) >= needed) { topPThreshold = candidate; }
    }
    threshold = max(threshold, topPThreshold);
  }
  if (row.minP > 0.0) { threshold = max(threshold, key(maximum + log(row.minP))); }

  var localTotal = 0.0;
  for (var i = first; i < end; i++) {
    let value = adjusted(row, i);
    if (key(value) >= threshold) { localTotal += exp(value - maximum); }
  }
  partials[lane] = localTotal;
  workgroupBarrier();
  if (lane == 0u) {
    var total = 0.0;
    for (var j = 0u; j < LANES; j++) { total += partials[j]; }
    let uniform01 = f32(pcgHash(row.seed ^ pcgHash(row.step)) >> 8u) * 5.9604645e-8; // × 2⁻²⁴
    let drawn = uniform01 * total;
    var cumulative = 0.0;
    var lastNonEmpty = 0u;
    chosenLane = 0xffffffffu;
    for (var j = 0u; j < LANES; j++) {
      if (partials[j] > 0.0) { lastNonEmpty = j; }
      if (chosenLane == 0xffffffffu && partials[j] > 0.0 && cumulative + partials[j] > drawn) {
        chosenLane = j;
        remainder = drawn - cumulative;
      }
      cumulative += partials[j];
    }
    if (chosenLane == 0xffffffffu) { chosenLane = lastNonEmpty; remainder = partials[lastNonEmpty]; }
  }
  workgroupBarrier();
  if (lane != chosenLane) { return; }
  var cumulative = 0.0;
  var lastKept = first;
  for (var i = first; i < end; i++) {
    let value = adjusted(row, i);
    if (key(value) < threshold) { continue; }
    lastKept = i;
    cumulative += exp(value - maximum);
    if (cumulative > remainder) {
      choose(row, i);
      return;
    }
  }
  choose(row, lastKept); // rounding left the draw past the end: the last kept token
}
