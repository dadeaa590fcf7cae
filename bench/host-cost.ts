// Host (JS) cost of one decode step for a graph with Tri-7B's structure: 32 layers, untied head, MHA,
// the same kernels and dispatches per layer, but widths cut to 128 so the GPU's share is negligible and
// the step's JS time (tables, recording every dispatch, uniforms, bind groups, submit) shows. Shared by
// `npm run bench -- host` (Node) and the benchmark page. Reported as the median of `steps` decode steps
// (GpuLlama.lastHostMs), with 1 and 4 sequences, each step queued as the scheduler queues them: sampling
// on the GPU, its token taken from the previous step's draw there (SAMPLED_TOKEN), two steps in flight;
// with the layers' dispatches recorded anew every step, and replayed (GpuLlama.replayDecodeLayers).
import type { GpuContext } from '../src/gpu/context.ts';
import copyCode from './copy.wgsl?raw';
import { GpuLlama, SAMPLED_TOKEN, type StepResult, seenBits } from '../src/model/llama-gpu.ts';
import { samplingConfig } from '../src/runtime/sampling.ts';
import { SyntheticWeights, syntheticSpec } from '../src/model/synthetic.ts';

/** Tri-7B's graph structure (32 layers, 32 heads, untied head) at small widths. */
export const TRI_7B_STRUCTURE = { hidden_size: 128, intermediate_size: 256, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 32, vocab_size: 1024, max_position_embeddings: 1024 };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/**
 * The WebGPU calls alone, for `dispatches` dispatches: setPipeline, setBindGroup and dispatchWorkgroups
 * with one cached pipeline and bind group (a copy of nothing), in one pass and submit: the floor under
 * any recording of a step that re-encodes its dispatches, in ms (median of `repeats`).
 */
async function webGpuCallsMs(gpu: GpuContext, dispatches: number, repeats: number): Promise<number> {
  const pipeline = gpu.pipeline('copy', copyCode, { WORKGROUP_SIZE: 64, PER_THREAD: 1 });
  const uniform = gpu.device.createBuffer({ label: 'params', size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const [source, destination] = [gpu.createBuffer('source', 16), gpu.createBuffer('destination', 16)];
  const group = gpu.bindGroup(pipeline, { buffer: uniform, offset: 0, size: 256 }, [source, destination]);
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    const encoder = gpu.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < dispatches; i++) {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(1);
    }
    pass.end();
    gpu.device.queue.submit([encoder.finish()]);
    times.push(performance.now() - start);
    await gpu.device.queue.onSubmittedWorkDone();
  }
  for (const buffer of [uniform, source, destination]) buffer.destroy();
  return median(times);
}

export async function hostCostRows(gpu: GpuContext, steps = 40): Promise<[string, string][]> {
  const spec = syntheticSpec(TRI_7B_STRUCTURE);
  const model = await GpuLlama.load(gpu, spec, new SyntheticWeights(3), { weights: { format: 'q4', groupSize: 32 }, kvCache: 'f16', contextLength: 512, maxSequences: 4 });
  const rows: [string, string][] = [];
  try {
    for (const [sequences, replay] of [[1, false], [1, true], [4, false], [4, true]] as const) {
      model.replayDecodeLayers = replay;
      const slots = Array.from({ length: sequences }, () => model.kv.createSequence([]).sequence.id);
      const hostMs: number[] = [];
      const sampling = samplingConfig({ repetitionPenalty: 1.1 });
      const queued: Promise<StepResult>[] = [];
      for (let step = 0; step < steps + 2; step++) {
        const batch = slots.map((id, stateSlot) => {
          model.kv.append(id, [step === 0 ? 1 : SAMPLED_TOKEN]);
          const sequence = model.kv.sequence(id);
          const seen = step === 0 ? { seen: seenBits(spec.vocabSize, [1]) } : {};
          return { pages: sequence.pages, tokens: [step === 0 ? 1 : SAMPLED_TOKEN], startPos: sequence.tokens.length - 1, stateSlot, output: { kind: 'sample' as const, sampling, step, ...seen } };
        });
        queued.push(model.step(batch));
        if (step >= 2) hostMs.push(model.lastHostMs); // the first steps compile pipelines
        if (queued.length === 2) await queued.shift();
      }
      await Promise.all(queued);
      for (const id of slots) model.kv.finish(id);
      const how = replay ? 'layers replayed' : 'every dispatch recorded';
      rows.push([`host ms per decode step, ${sequences} sequence${sequences > 1 ? 's' : ''}, ${how} (32 layers, ${model.lastDispatchCount} dispatches)`, `${median(hostMs).toFixed(3)} ms (median of ${steps})`]);
    }
    const dispatches = model.lastDispatchCount;
    rows.push([`the WebGPU calls alone for ${dispatches} dispatches (set pipeline, bind group, dispatch)`, `${(await webGpuCallsMs(gpu, dispatches, steps)).toFixed(3)} ms (median of ${steps})`]);
  } finally {
    model.destroy();
  }
  return rows;
}
