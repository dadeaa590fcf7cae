// The Llama checkpoint layout: HF tensor names, expected shapes, and loading as f32 arrays.
import { SafetensorsFormatError, UnsupportedModelError } from '../errors.ts';
import type { LlamaSpec } from './config.ts';
import type { SafetensorsCheckpoint } from './safetensors.ts';

/** Matrices are row-major W[out][in] (HF Linear layout), so y = W·x reads W row by row. */
export interface LlamaLayerWeights<T> {
  attnNorm: T; //  [hidden]
  wq: T; //        [heads·headDim][hidden]
  wk: T; //        [kvHeads·headDim][hidden]
  wv: T; //        [kvHeads·headDim][hidden]
  wo: T; //        [hidden][heads·headDim]
  ffnNorm: T; //   [hidden]
  wGate: T; //     [ffn][hidden]
  wUp: T; //       [ffn][hidden]
  wDown: T; //     [hidden][ffn]
}

export interface LlamaWeights<T> {
  embed: T; //     [vocab][hidden]
  layers: LlamaLayerWeights<T>[];
  finalNorm: T; // [hidden]
  lmHead: T; //    [vocab][hidden]; the same object as embed when tied
}

/** HF tensor name and expected shape of every weight. */
export function llamaTensorLayout(spec: LlamaSpec): LlamaWeights<{ name: string; shape: number[] }> {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize } = spec;
  const at = (name: string, ...shape: number[]) => ({ name, shape });
  const { prefix, lmHead } = spec.tensorNames ?? { prefix: 'model.', lmHead: 'lm_head.weight' };
  const embed = at(`${prefix}embed_tokens.weight`, vocabSize, h);
  return {
    embed,
    layers: Array.from({ length: spec.numLayers }, (_, i) => {
      const p = `${prefix}layers.${i}`;
      return {
        attnNorm: at(`${p}.input_layernorm.weight`, h),
        wq: at(`${p}.self_attn.q_proj.weight`, numHeads * headDim, h),
        wk: at(`${p}.self_attn.k_proj.weight`, numKvHeads * headDim, h),
        wv: at(`${p}.self_attn.v_proj.weight`, numKvHeads * headDim, h),
        wo: at(`${p}.self_attn.o_proj.weight`, h, numHeads * headDim),
        ffnNorm: at(`${p}.post_attention_layernorm.weight`, h),
        wGate: at(`${p}.mlp.gate_proj.weight`, f, h),
        wUp: at(`${p}.mlp.up_proj.weight`, f, h),
        wDown: at(`${p}.mlp.down_proj.weight`, h, f),
      };
    }),
    finalNorm: at(`${prefix}norm.weight`, h),
    lmHead: spec.tieWordEmbeddings ? embed : at(lmHead, vocabSize, h),
  };
}

/** Every distinct tensor of the checkpoint, each once (a tied head is the embedding). */
export function llamaTensors(spec: LlamaSpec): { name: string; shape: number[] }[] {
  const layout = llamaTensorLayout(spec);
  const tensors = [layout.embed, ...layout.layers.flatMap((l) => Object.values(l)), layout.finalNorm];
  return spec.tieWordEmbeddings ? tensors : [...tensors, layout.lmHead];
}

/** Checks that every tensor exists with the expected shape and a float dtype, before anything is read. */
export function checkLlamaCheckpoint(spec: LlamaSpec, checkpoint: SafetensorsCheckpoint): void {
  const prefix = spec.tensorNames?.prefix ?? 'model.';
  // The language model inside a multimodal checkpoint answers for its own tensors only (the vision half checks its own).
  const isOtherTensor = (name: string) => spec.tensorNames !== undefined && !name.startsWith(prefix) && name !== spec.tensorNames.lmHead;
  // Count the checkpoint's layers before building the layout: a config claiming 10^9 layers must be
  // refused at once, not after allocating a layout for each.
  const layerIndices = new Set<number>();
  for (const name of checkpoint.tensors.keys()) {
    const match = name.startsWith(`${prefix}layers.`) ? /^(\d+)\./.exec(name.slice(prefix.length + 7)) : null;
    if (match) layerIndices.add(Number(match[1]));
  }
  if (layerIndices.size !== spec.numLayers) {
    throw new UnsupportedModelError(`config.json says num_hidden_layers = ${spec.numLayers}, but the checkpoint holds ${layerIndices.size} layers`);
  }
  const expected = new Set<string>();
  for (const { name, shape } of llamaTensors(spec)) {
    expected.add(name);
    const info = checkpoint.get(name);
    if (!info) {
      throw new UnsupportedModelError(`checkpoint has no tensor "${name}" (expected shape [${shape.join(', ')}])`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new SafetensorsFormatError(
        info.source.name,
        `shape [${info.shape.join(', ')}] does not match config.json, which implies [${shape.join(', ')}]`,
        name,
      );
    }
    if (!['F32', 'F16', 'BF16'].includes(info.dtype)) {
      throw new SafetensorsFormatError(info.source.name, `dtype ${info.dtype} is not a float weight type`, name);
    }
  }
  // A tensor the layout does not use means a different architecture (or a mislabelled checkpoint):
  // running without it would be silently wrong. Precomputed RoPE buffers and a tied head's copy are harmless.
  for (const [name, info] of checkpoint.tensors) {
    if (expected.has(name) || isOtherTensor(name) || /rotary_emb\.inv_freq$/.test(name) || (spec.tieWordEmbeddings && name === (spec.tensorNames?.lmHead ?? 'lm_head.weight'))) continue;
    throw new UnsupportedModelError(`${info.source.name} holds tensor "${name}", which a Llama with this config.json does not have`);
  }
}

/** Maps every weight of the layout through `load` (one tensor at a time; tied heads are loaded once). */
export async function mapLlamaWeights<T>(
  spec: LlamaSpec,
  load: (name: string) => Promise<T>,
): Promise<LlamaWeights<T>> {
  const layout = llamaTensorLayout(spec);
  const embed = await load(layout.embed.name);
  const layers: LlamaLayerWeights<T>[] = [];
  for (const names of layout.layers) {
    const layer = {} as LlamaLayerWeights<T>;
    for (const key of Object.keys(names) as (keyof LlamaLayerWeights<T>)[]) layer[key] = await load(names[key].name);
    layers.push(layer);
  }
  const finalNorm = await load(layout.finalNorm.name);
  const lmHead = spec.tieWordEmbeddings ? embed : await load(layout.lmHead.name);
  return { embed, layers, finalNorm, lmHead };
}

export function loadLlamaWeightsF32(spec: LlamaSpec, checkpoint: SafetensorsCheckpoint, signal?: AbortSignal) {
  checkLlamaCheckpoint(spec, checkpoint);
  return mapLlamaWeights(spec, (name) => checkpoint.readFloat32(name, signal));
}
