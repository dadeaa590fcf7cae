// A synthetic model: any Llama config (Tri-7B's shapes by default) whose weights are made on the GPU from
// a seed (kernels/random-fill.wgsl) instead of downloaded, so a user can measure true 7B decode and prefill
// speed in seconds of setup rather than after a 4 GB download. It goes through the same memory plan and
// typed errors as a real load (GpuLlama.load); its text is meaningless, its speed is the real model's.
import type { GpuContext } from '../gpu/context.ts';
import { CommandRecorder } from '../gpu/recorder.ts';
import type { GpuMatrix } from '../ops/linear.ts';
import { randomFill } from '../ops/random-fill.ts';
import { pcgHash } from '../reference/random-fill.ts';
import { type LlamaSpec, parseLlamaConfig } from './config.ts';

/** Tri-7B's config.json fields that shape the graph (trillionlabs/Tri-7B). */
export const TRI_7B_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu',
  hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32,
  head_dim: 128, vocab_size: 128256, max_position_embeddings: 32768, rms_norm_eps: 1e-5, rope_theta: 500000.0,
  tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2,
} as const;

/** A LlamaSpec from config.json fields (Tri-7B's by default, any overridden). */
export function syntheticSpec(overrides: Record<string, unknown> = {}): LlamaSpec {
  return parseLlamaConfig({ ...TRI_7B_CONFIG, ...overrides });
}

/** Weights generated on the GPU from `seed`: pass as the source of GpuLlama.load. */
export class SyntheticWeights {
  readonly seed: number;
  constructor(seed = 1) {
    this.seed = seed >>> 0;
  }

  /**
   * Writes every part of `matrices` (in order). Values are uniform in ±1/√K (f32, f16), or random 4-bit
   * codes with scales in ±1/(4√K) (q4): small enough that activations stay finite through 32 layers.
   */
  fill(gpu: GpuContext, matrices: readonly GpuMatrix[]): void {
    let stream = 0;
    for (const matrix of matrices) {
      const recorder = new CommandRecorder(gpu);
      const amplitude = 1 / Math.sqrt(matrix.layout.k);
      for (const part of matrix.parts) {
        const { layout } = part;
        const seed = (index: number) => pcgHash((this.seed + Math.imul(stream, 0x9e3779b9) + index) >>> 0);
        const mode = layout.format === 'q4' ? 'bits' : layout.format;
        randomFill(recorder, { out: part.data, words: layout.dataBytes / 4, seed: seed(0), mode, amplitude });
        if (layout.scaleBytes) randomFill(recorder, { out: part.scales, words: layout.scaleBytes / 4, seed: seed(1), mode: 'f16', amplitude: amplitude / 4 });
        stream++;
      }
      // One submit per matrix: a Tri-7B layer's matrices are ~100 MB each, written in a few ms on a GPU.
      recorder.submit();
    }
  }
}
