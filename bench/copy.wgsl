// The bandwidth yardstick for benchmarks: destination = source, as vec4, PER_THREAD vectors per
// invocation (grid-strided so neighbouring invocations touch neighbouring vectors). The benchmark runs
// a few variants and uses the best as "copy bandwidth" on this adapter.
struct Params {
  count: u32,    // vec4s
  threads: u32,  // invocations in the grid
}

override WORKGROUP_SIZE: u32 = 256u;
override PER_THREAD: u32 = 1u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> source: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> destination: array<vec4f>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let first = id.x + id.y * groups.x * WORKGROUP_SIZE;
  for (var j = 0u; j < PER_THREAD; j++) {
    let i = first + j * params.threads;
    if (i < params.count) { destination[i] = source[i]; }
  }
}
