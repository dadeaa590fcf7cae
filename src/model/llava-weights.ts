// The tensors of a llava checkpoint's vision half (CLIP ViT tower + MLP projector) by role, and where its
// language model's tensors live. Two layouts are in use: transformers 5.x writes `model.vision_tower.
// vision_model.*`, `model.multi_modal_projector.*`, `model.language_model.*`, `lm_head.weight`; 4.x
// wrote `vision_tower.vision_model.*`, `multi_modal_projector.*`, `language_model.model.*`,
// `language_model.lm_head.weight` (some exports drop `vision_model.`). The checkpoint says which.
import { SafetensorsFormatError, UnsupportedModelError } from '../errors.ts';
import type { LlamaTensorNames } from './config.ts';
import type { VisionSpec } from './llava-config.ts';
import type { SafetensorsCheckpoint } from './safetensors.ts';

export interface Affine<T> {
  weight: T;
  bias: T;
}

export interface VisionLayerWeights<T> {
  layerNorm1: Affine<T>;
  q: Affine<T>;
  k: Affine<T>;
  v: Affine<T>;
  out: Affine<T>;
  layerNorm2: Affine<T>;
  fc1: Affine<T>;
  fc2: Affine<T>;
}

export interface VisionWeights<T> {
  /** [hidden][channels·patch·patch], the conv kernel flattened in (channel, y, x) order. */
  patchEmbedding: T;
  classEmbedding: T;
  /** [positions][hidden]. */
  positionEmbedding: T;
  preLayerNorm: Affine<T>;
  /** Only the layers the features come from (featureLayers). */
  layers: VisionLayerWeights<T>[];
  projector1: Affine<T>;
  projector2: Affine<T>;
}

export type TensorRef = { name: string; shape: number[] };

const TOWER_PREFIXES = ['model.vision_tower.vision_model.', 'vision_tower.vision_model.', 'model.vision_tower.', 'vision_tower.'];
const PROJECTOR_PREFIXES = ['model.multi_modal_projector.', 'multi_modal_projector.'];
const LANGUAGE_LAYOUTS: LlamaTensorNames[] = [
  { prefix: 'model.language_model.', lmHead: 'lm_head.weight' },
  { prefix: 'language_model.model.', lmHead: 'language_model.lm_head.weight' },
];

function findPrefix(checkpoint: SafetensorsCheckpoint, prefixes: readonly string[], probe: string, what: string): string {
  const prefix = prefixes.find((p) => checkpoint.get(`${p}${probe}`));
  if (prefix === undefined) throw new UnsupportedModelError(`this llava checkpoint has no ${what} (looked for ${prefixes.map((p) => p + probe).join(', ')})`);
  return prefix;
}

/** Where a llava checkpoint keeps its language model's tensors. */
export function languageTensorNames(checkpoint: SafetensorsCheckpoint): LlamaTensorNames {
  const layout = LANGUAGE_LAYOUTS.find((l) => checkpoint.get(`${l.prefix}embed_tokens.weight`));
  if (!layout) throw new UnsupportedModelError(`this llava checkpoint has no language model (looked for ${LANGUAGE_LAYOUTS.map((l) => `${l.prefix}embed_tokens.weight`).join(', ')})`);
  return checkpoint.get(layout.lmHead) ? layout : { ...layout, lmHead: LANGUAGE_LAYOUTS.find((l) => checkpoint.get(l.lmHead))?.lmHead ?? layout.lmHead };
}

/** The vision tensors with the shapes the spec implies, checked against the checkpoint. */
export function visionTensorLayout(spec: VisionSpec, checkpoint: SafetensorsCheckpoint): VisionWeights<TensorRef> {
  const { tower } = spec;
  const h = tower.hiddenSize;
  const t = findPrefix(checkpoint, TOWER_PREFIXES, 'embeddings.patch_embedding.weight', 'CLIP vision tower');
  const p = findPrefix(checkpoint, PROJECTOR_PREFIXES, 'linear_1.weight', 'multi_modal_projector');
  const at = (name: string, ...shape: number[]): TensorRef => {
    const info = checkpoint.get(name);
    if (!info) throw new SafetensorsFormatError('checkpoint', 'tensor not found', name);
    const size = shape.reduce((a, b) => a * b, 1);
    if (info.shape.reduce((a, b) => a * b, 1) !== size) throw new SafetensorsFormatError(info.source.name, `shape [${info.shape.join(', ')}] does not match config.json's [${shape.join(', ')}]`, name);
    return { name, shape };
  };
  const affine = (name: string, n: number, k?: number): Affine<TensorRef> => ({
    weight: k === undefined ? at(`${name}.weight`, n) : at(`${name}.weight`, n, k),
    bias: at(`${name}.bias`, n),
  });
  const positions = (tower.imageSize / tower.patchSize) ** 2 + 1;
  const projectorIn = h;
  const projectorOut = spec.textHiddenSize;
  if (!spec.projectorBias) throw new UnsupportedModelError('config.json: a projector without biases (multimodal_projector_bias: false) is not supported');
  return {
    patchEmbedding: at(`${t}embeddings.patch_embedding.weight`, h, tower.numChannels * tower.patchSize * tower.patchSize),
    classEmbedding: at(`${t}embeddings.class_embedding`, h),
    positionEmbedding: at(`${t}embeddings.position_embedding.weight`, positions, h),
    preLayerNorm: affine(`${t}pre_layrnorm`, h),
    layers: Array.from({ length: spec.featureLayers }, (_, i) => {
      const l = `${t}encoder.layers.${i}`;
      return {
        layerNorm1: affine(`${l}.layer_norm1`, h),
        q: affine(`${l}.self_attn.q_proj`, h, h),
        k: affine(`${l}.self_attn.k_proj`, h, h),
        v: affine(`${l}.self_attn.v_proj`, h, h),
        out: affine(`${l}.self_attn.out_proj`, h, h),
        layerNorm2: affine(`${l}.layer_norm2`, h),
        fc1: affine(`${l}.mlp.fc1`, tower.intermediateSize, h),
        fc2: affine(`${l}.mlp.fc2`, h, tower.intermediateSize),
      };
    }),
    projector1: affine(`${p}linear_1`, projectorOut, projectorIn),
    projector2: affine(`${p}linear_2`, projectorOut, projectorOut),
  };
}

/** Reads every vision tensor as f32 (the tower is small next to the language model: CLIP-L ~300M). */
export async function readVisionWeights(spec: VisionSpec, checkpoint: SafetensorsCheckpoint, signal?: AbortSignal): Promise<VisionWeights<Float32Array<ArrayBuffer>>> {
  const layout = visionTensorLayout(spec, checkpoint);
  const read = async (ref: TensorRef) => {
    const values = await checkpoint.readFloat32(ref.name, signal);
    const bad = values.findIndex((value) => !Number.isFinite(value));
    if (bad >= 0) throw new SafetensorsFormatError(checkpoint.get(ref.name)!.source.name, `element ${bad} is ${values[bad]}: the weights are corrupt`, ref.name);
    return values;
  };
  const affine = async (a: Affine<TensorRef>) => ({ weight: await read(a.weight), bias: await read(a.bias) });
  const layers = [];
  for (const layer of layout.layers) {
    layers.push({
      layerNorm1: await affine(layer.layerNorm1), q: await affine(layer.q), k: await affine(layer.k), v: await affine(layer.v),
      out: await affine(layer.out), layerNorm2: await affine(layer.layerNorm2), fc1: await affine(layer.fc1), fc2: await affine(layer.fc2),
    });
  }
  return {
    patchEmbedding: await read(layout.patchEmbedding), classEmbedding: await read(layout.classEmbedding),
    positionEmbedding: await read(layout.positionEmbedding), preLayerNorm: await affine(layout.preLayerNorm), layers,
    projector1: await affine(layout.projector1), projector2: await affine(layout.projector2),
  };
}
