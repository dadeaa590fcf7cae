// Fills a buffer with deterministic pseudo-random words from a seed: the weights of a synthetic model
// (any Llama config, Tri-7B's by default) made on the GPU in a moment instead of downloaded. The same
// (seed, index) always gives the same word; src/reference/random-fill.ts computes the same words on the CPU.
// Modes: 0 = raw bits (q4 codes: every 4-bit code is valid), 1 = two f16 values uniform in [-amplitude,
// amplitude) per word (f16 weights, q4 scales and minimums), 2 = one f32 uniform in [-amplitude, amplitude).
// The uniform values are exact in f32 (an integer times a power of two, minus 1) and then scaled by one
// correctly rounded multiply, so f32 words match the CPU bit for bit; f16 packing may round either way.
// Grid: one invocation per word, 64 per workgroup, 2D-folded.

struct Params {
  words: u32,
  seed: u32,
  mode: u32,
  amplitude: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

// PCG hash (Jarzynski and Olano, "Hash Functions for GPU Rendering", 2020): one round, good avalanche.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = id.x + id.y * groups.x * 64u;
  if (index >= params.words) { return; }
  let bits = pcg(index ^ pcg(params.seed));
  if (params.mode == 0u) {
    out[index] = bits;
  } else if (params.mode == 1u) {
    let low = (f32(bits & 0xffffu) - 32768.0) * (1.0 / 32768.0);
    let high = (f32(bits >> 16u) - 32768.0) * (1.0 / 32768.0);
    out[index] = pack2x16float(vec2f(low, high) * params.amplitude);
  } else {
    out[index] = bitcast<u32>((f32(bits >> 8u) - 8388608.0) * (1.0 / 8388608.0) * params.amplitude);
  }
}
