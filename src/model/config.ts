// Hugging Face config.json (+ generation_config.json) → a typed Llama spec.
// Accepts both transformers 4.x keys (rope_theta, rope_scaling, torch_dtype) and 5.x keys
// (rope_parameters, dtype). Anything we cannot run exactly is rejected with a clear message.
import { UnsupportedModelError } from '../errors.ts';

export type RopeScaling =
  | { readonly type: 'default' }
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    };

export interface LlamaSpec {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly rmsNormEps: number;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number | undefined;
  /** Generation stops on any of these. */
  readonly eosTokenIds: readonly number[];
  /** Where the tensors live when not at `model.*` / `lm_head.weight` (a llava checkpoint's language model). */
  readonly tensorNames?: LlamaTensorNames;
}

export interface LlamaTensorNames {
  /** Before `embed_tokens.weight`, `layers.{i}.…`, `norm.weight`. */
  readonly prefix: string;
  readonly lmHead: string;
}

const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM'];

type Json = Record<string, unknown>;

function positiveInteger(config: Json, key: string): number {
  const value = config[key];
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    throw new UnsupportedModelError(`config.json: "${key}" must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value as number;
}

function positiveNumber(value: unknown, what: string): number {
  if (typeof value !== 'number' || !(value > 0)) {
    throw new UnsupportedModelError(`config.json: ${what} must be a positive number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function tokenIds(value: unknown): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((id): id is number => Number.isSafeInteger(id));
}

function parseRopeScaling(config: Json): { theta: number; scaling: RopeScaling } {
  // transformers 5.x: rope_parameters {rope_theta, rope_type, factor, ...}; 4.x: rope_theta + rope_scaling.
  const parameters = (config.rope_parameters ?? null) as Json | null;
  const scaling = (parameters ?? config.rope_scaling ?? null) as Json | null;
  const theta = positiveNumber(parameters?.rope_theta ?? config.rope_theta ?? 10000, 'rope_theta');
  const type = (scaling?.rope_type ?? scaling?.type ?? 'default') as string;
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'default' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: positiveNumber(scaling?.factor, 'rope_scaling.factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: positiveNumber(scaling?.factor, 'rope_scaling.factor'),
          lowFreqFactor: positiveNumber(scaling?.low_freq_factor, 'rope_scaling.low_freq_factor'),
          highFreqFactor: positiveNumber(scaling?.high_freq_factor, 'rope_scaling.high_freq_factor'),
          originalMaxPositions: positiveNumber(
            scaling?.original_max_position_embeddings,
            'rope_scaling.original_max_position_embeddings',
          ),
        },
      };
    default:
      throw new UnsupportedModelError(
        `config.json: RoPE scaling type "${type}" is not supported (supported: default, linear, llama3)`,
      );
  }
}

export function parseLlamaConfig(config: Json, generationConfig: Json = {}): LlamaSpec {
  const architectures = (config.architectures ?? []) as string[];
  const architecture = architectures[0] ?? String(config.model_type ?? 'unknown');
  if (!SUPPORTED_ARCHITECTURES.includes(architecture) && !(architectures.length === 0 && config.model_type === 'llama')) {
    throw new UnsupportedModelError(
      `architecture "${architecture}" is not supported; tri-webgpu runs ${SUPPORTED_ARCHITECTURES.join(', ')} checkpoints`,
    );
  }
  if (config.attention_bias === true || config.mlp_bias === true) {
    throw new UnsupportedModelError('config.json: attention_bias / mlp_bias are not supported');
  }
  const activation = config.hidden_act ?? 'silu';
  if (activation !== 'silu') throw new UnsupportedModelError(`config.json: hidden_act "${activation}" is not supported (only silu)`);

  const hiddenSize = positiveInteger(config, 'hidden_size');
  const numHeads = positiveInteger(config, 'num_attention_heads');
  const numKvHeads = config.num_key_value_heads === undefined ? numHeads : positiveInteger(config, 'num_key_value_heads');
  const headDim = config.head_dim === undefined || config.head_dim === null ? hiddenSize / numHeads : positiveInteger(config, 'head_dim');
  if (!Number.isInteger(headDim)) throw new UnsupportedModelError('config.json: hidden_size is not a multiple of num_attention_heads');
  if (numHeads % numKvHeads !== 0) {
    throw new UnsupportedModelError(`config.json: ${numHeads} heads cannot be grouped over ${numKvHeads} KV heads`);
  }
  if (headDim % 2 !== 0) throw new UnsupportedModelError(`config.json: head_dim ${headDim} must be even for RoPE`);
  const { theta, scaling } = parseRopeScaling(config);

  // Stop tokens: generation_config lists every stop id; config.json often only one. The tokenizer's
  // eos_token is added by the loader, which knows its id.
  const eosTokenIds = [...new Set([...tokenIds(generationConfig.eos_token_id), ...tokenIds(config.eos_token_id)])];
  const bos = tokenIds(generationConfig.bos_token_id ?? config.bos_token_id)[0];
  return {
    hiddenSize,
    intermediateSize: positiveInteger(config, 'intermediate_size'),
    numLayers: positiveInteger(config, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: positiveInteger(config, 'vocab_size'),
    maxPositions: positiveInteger(config, 'max_position_embeddings'),
    ropeTheta: theta,
    ropeScaling: scaling,
    rmsNormEps: positiveNumber(config.rms_norm_eps ?? 1e-6, 'rms_norm_eps'),
    tieWordEmbeddings: config.tie_word_embeddings === true,
    bosTokenId: bos,
    eosTokenIds,
  };
}

/**
 * RoPE inverse frequencies (headDim/2 of them) with the configured scaling, as in HF's
 * `ROPE_INIT_FUNCTIONS`. Shared by the CPU reference and the GPU kernel (uploaded as a table), so
 * every scaling type is one code path.
 */
export function ropeInverseFrequencies(spec: Pick<LlamaSpec, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array<ArrayBuffer> {
  const half = spec.headDim / 2;
  const out = new Float32Array(half);
  const scaling = spec.ropeScaling;
  for (let i = 0; i < half; i++) {
    // HF computes base ** (2i/d) in float32 and inverts it; rounding here keeps us within an ulp of that.
    let invFreq = 1 / Math.fround(spec.ropeTheta ** Math.fround((2 * i) / spec.headDim));
    if (scaling.type === 'linear') invFreq /= scaling.factor;
    if (scaling.type === 'llama3') {
      const lowFreqWavelen = scaling.originalMaxPositions / scaling.lowFreqFactor;
      const highFreqWavelen = scaling.originalMaxPositions / scaling.highFreqFactor;
      const wavelen = (2 * Math.PI) / invFreq;
      if (wavelen > lowFreqWavelen) {
        invFreq /= scaling.factor;
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (scaling.originalMaxPositions / wavelen - scaling.lowFreqFactor) /
          (scaling.highFreqFactor - scaling.lowFreqFactor);
        invFreq = (1 - smooth) * (invFreq / scaling.factor) + smooth * invFreq;
      }
    }
    out[i] = invFreq;
  }
  return out;
}

/**
 * cos and sin of position · invFreq[i] for every position below `positions`, interleaved
 * [position][headDim/2][cos, sin]. The angle is rounded to float32 first, as HF computes it.
 */
export function ropeCosSinTable(spec: Pick<LlamaSpec, 'headDim' | 'ropeTheta' | 'ropeScaling'>, positions: number): Float32Array<ArrayBuffer> {
  const invFreq = ropeInverseFrequencies(spec);
  const half = invFreq.length;
  const table = new Float32Array(positions * half * 2);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]!);
      table[2 * (p * half + i)] = Math.cos(angle);
      table[2 * (p * half + i) + 1] = Math.sin(angle);
    }
  }
  return table;
}
