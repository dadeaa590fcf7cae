// Host (JS) cost of one decode step for a graph with Tri-7B's structure: 32 layers, untied head, MHA,
// the same kernels and dispatches per layer, but widths cut to 128 so the GPU's share is negligible and
// the step's JS time (tables, recording every dispatch, uniforms, bind groups, submit) shows. Shared by
// `npm run bench -- host` (Node) and the benchmark page. Reported as the median of `steps` decode steps
// (GpuLlama.lastHostMs), with 1 and 4 sequences.
import type { GpuContext } from '../src/gpu/context.ts';
import { GpuLlama } from '../src/model/llama-gpu.ts';
import { SyntheticWeights, syntheticSpec } from '../src/model/synthetic.ts';

/** Tri-7B's graph structure (32 layers, 32 heads, untied head) at small widths. */
export const TRI_7B_STRUCTURE = { hidden_size: 128, intermediate_size: 256, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 32, vocab_size: 1024, max_position_embeddings: 1024 };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export async function hostCostRows(gpu: GpuContext, steps = 40): Promise<[string, string][]> {
  const spec = syntheticSpec(TRI_7B_STRUCTURE);
  const model = await GpuLlama.load(gpu, spec, new SyntheticWeights(3), { weights: { format: 'q4', groupSize: 32 }, kvCache: 'f16', contextLength: 512, maxSequences: 4 });
  const rows: [string, string][] = [];
  try {
    for (const sequences of [1, 4]) {
      const slots = Array.from({ length: sequences }, () => model.kv.createSequence([1]).sequence.id);
      const hostMs: number[] = [];
      let ids = slots.map(() => 1);
      for (let step = 0; step < steps + 2; step++) {
        const batch = slots.map((id, i) => {
          model.kv.append(id, [ids[i]!]);
          const sequence = model.kv.sequence(id);
          return { pages: sequence.pages, tokens: [ids[i]!], startPos: sequence.tokens.length - 1, output: { kind: 'logits' as const } };
        });
        const result = await model.step(batch);
        ids = result.logits.map((logits) => (logits ? logits[0]!.indexOf(Math.max(...logits[0]!)) : 1));
        if (step >= 2) hostMs.push(model.lastHostMs); // the first steps compile pipelines
      }
      for (const id of slots) model.kv.finish(id);
      rows.push([`host ms per decode step, ${sequences} sequence${sequences > 1 ? 's' : ''} (32 layers, ${model.lastDispatchCount} dispatches)`, `${median(hostMs).toFixed(3)} ms (median of ${steps})`]);
    }
  } finally {
    model.destroy();
  }
  return rows;
}
