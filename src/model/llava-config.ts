// A Hugging Face `llava` config.json (LlavaForConditionalGeneration: Trillion-LLaVA's family) → the
// vision half's spec: a CLIP ViT tower, the layer its features are taken from, an MLP projector into the
// language model's width, and how many `<image>` positions each image fills. The language model is the
// text_config, parsed as any Llama (config.ts). preprocessor_config.json → how pictures become pixels.
import { UnsupportedModelError } from '../errors.ts';

type Json = Record<string, unknown>;

export type VisionActivation = 'quick_gelu' | 'gelu';

export interface ClipVisionSpec {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly numChannels: number;
  readonly layerNormEps: number;
  readonly activation: VisionActivation;
}

export interface VisionSpec {
  readonly tower: ClipVisionSpec;
  /** Encoder layers run: the features are the hidden states after this many (vision_feature_layer). */
  readonly featureLayers: number;
  /** vision_feature_select_strategy "default" drops the CLS position; "full" keeps it. */
  readonly dropCls: boolean;
  readonly projectorActivation: VisionActivation;
  readonly projectorBias: boolean;
  /** Width of the language model's embeddings, which the projector's output replaces. */
  readonly textHiddenSize: number;
  /** The `<image>` token; each one in a prompt stands for `imageSeqLength` feature rows. */
  readonly imageTokenId: number;
  readonly imageSeqLength: number;
}

/** CLIPImageProcessor's steps (preprocessor_config.json). */
export interface ImagePreprocessSpec {
  readonly shortestEdge: number;
  readonly cropHeight: number;
  readonly cropWidth: number;
  /** PIL resample filter: 3 bicubic, 2 bilinear. */
  readonly resample: 2 | 3;
  readonly doResize: boolean;
  readonly rescaleFactor: number;
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

const integer = (json: Json, key: string, where: string): number => {
  const value = json[key];
  if (!Number.isSafeInteger(value) || (value as number) <= 0) throw new UnsupportedModelError(`${where}: "${key}" must be a positive integer, got ${JSON.stringify(value)}`);
  return value as number;
};

function activation(value: unknown, where: string): VisionActivation {
  if (value === 'quick_gelu' || value === 'gelu') return value;
  throw new UnsupportedModelError(`${where} "${String(value)}" is not supported (quick_gelu or gelu)`);
}

export function isLlavaConfig(config: Json): boolean {
  return config.model_type === 'llava' || ((config.architectures ?? []) as string[])[0] === 'LlavaForConditionalGeneration';
}

/** The vision half of a llava config, and its text_config for the Llama parser. */
export function parseLlavaConfig(config: Json): { textConfig: Json; vision: VisionSpec } {
  const textConfig = config.text_config as Json | undefined;
  const visionConfig = config.vision_config as Json | undefined;
  if (!textConfig || typeof textConfig !== 'object' || !visionConfig || typeof visionConfig !== 'object') {
    throw new UnsupportedModelError('config.json: a llava model needs text_config and vision_config');
  }
  const where = 'config.json vision_config';
  if (visionConfig.model_type !== undefined && visionConfig.model_type !== 'clip_vision_model') {
    throw new UnsupportedModelError(`${where}: vision tower "${String(visionConfig.model_type)}" is not supported (only clip_vision_model)`);
  }
  const hiddenSize = integer(visionConfig, 'hidden_size', where);
  const numHeads = integer(visionConfig, 'num_attention_heads', where);
  if (hiddenSize % numHeads) throw new UnsupportedModelError(`${where}: hidden_size ${hiddenSize} is not a multiple of ${numHeads} heads`);
  const imageSize = integer(visionConfig, 'image_size', where);
  const patchSize = integer(visionConfig, 'patch_size', where);
  if (imageSize % patchSize) throw new UnsupportedModelError(`${where}: image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  const numLayers = integer(visionConfig, 'num_hidden_layers', where);
  const tower: ClipVisionSpec = {
    hiddenSize, numHeads, headDim: hiddenSize / numHeads, imageSize, patchSize, numLayers,
    intermediateSize: integer(visionConfig, 'intermediate_size', where),
    numChannels: visionConfig.num_channels === undefined ? 3 : integer(visionConfig, 'num_channels', where),
    layerNormEps: typeof visionConfig.layer_norm_eps === 'number' ? visionConfig.layer_norm_eps : 1e-5,
    activation: activation(visionConfig.hidden_act ?? 'quick_gelu', `${where}: hidden_act`),
  };
  if (tower.numChannels !== 3) throw new UnsupportedModelError(`${where}: ${tower.numChannels} channels (only RGB)`);

  // hidden_states[0] is the embeddings (after pre_layrnorm), hidden_states[i] the output of layer i.
  const layer = config.vision_feature_layer ?? -2;
  if (!Number.isSafeInteger(layer)) throw new UnsupportedModelError(`config.json: vision_feature_layer ${JSON.stringify(layer)} is not supported (one layer index)`);
  const featureLayers = (layer as number) >= 0 ? (layer as number) : numLayers + 1 + (layer as number);
  if (featureLayers < 0 || featureLayers > numLayers) throw new UnsupportedModelError(`config.json: vision_feature_layer ${layer} is outside the tower's ${numLayers} layers`);
  const strategy = config.vision_feature_select_strategy ?? 'default';
  if (strategy !== 'default' && strategy !== 'full') throw new UnsupportedModelError(`config.json: vision_feature_select_strategy "${String(strategy)}" is not supported (default or full)`);
  const dropCls = strategy === 'default';
  const patches = (imageSize / patchSize) ** 2;
  const imageSeqLength = config.image_seq_length === undefined ? patches + (dropCls ? 0 : 1) : integer(config, 'image_seq_length', 'config.json');
  if (imageSeqLength !== patches + (dropCls ? 0 : 1)) throw new UnsupportedModelError(`config.json: image_seq_length ${imageSeqLength} does not match the tower's ${patches} patches`);
  const imageTokenId = config.image_token_index ?? config.image_token_id;
  if (!Number.isSafeInteger(imageTokenId) || (imageTokenId as number) < 0) throw new UnsupportedModelError('config.json: a llava model needs image_token_index');
  if (!Number.isSafeInteger(textConfig.hidden_size)) throw new UnsupportedModelError('config.json text_config: "hidden_size" must be a positive integer');
  return {
    textConfig,
    vision: {
      tower, featureLayers, dropCls, imageSeqLength, imageTokenId: imageTokenId as number,
      projectorActivation: activation(config.projector_hidden_act ?? 'gelu', 'config.json: projector_hidden_act'),
      projectorBias: config.multimodal_projector_bias !== false,
      textHiddenSize: textConfig.hidden_size as number,
    },
  };
}

/** preprocessor_config.json (CLIPImageProcessor) → preprocessing steps; missing keys take CLIP's defaults. */
export function parsePreprocessorConfig(json: Json | undefined, imageSize: number): ImagePreprocessSpec {
  const where = 'preprocessor_config.json';
  const config = json ?? {};
  const size = (config.size ?? { shortest_edge: imageSize }) as Json;
  const crop = (config.crop_size ?? { height: imageSize, width: imageSize }) as Json;
  const shortestEdge = typeof size === 'number' ? size : (size.shortest_edge ?? size.height) as number;
  const triple = (value: unknown, fallback: [number, number, number], key: string): [number, number, number] => {
    const list = value ?? fallback;
    if (!Array.isArray(list) || list.length !== 3 || !list.every((v) => typeof v === 'number')) throw new UnsupportedModelError(`${where}: ${key} must be three numbers`);
    return list as [number, number, number];
  };
  const resample = config.resample ?? 3;
  if (resample !== 2 && resample !== 3) throw new UnsupportedModelError(`${where}: resample ${JSON.stringify(resample)} is not supported (2 bilinear, 3 bicubic)`);
  const spec: ImagePreprocessSpec = {
    shortestEdge, cropHeight: (typeof crop === 'number' ? crop : crop.height) as number, cropWidth: (typeof crop === 'number' ? crop : crop.width) as number,
    resample, doResize: config.do_resize !== false,
    rescaleFactor: config.do_rescale === false ? 1 : typeof config.rescale_factor === 'number' ? config.rescale_factor : 1 / 255,
    mean: config.do_normalize === false ? [0, 0, 0] : triple(config.image_mean, [0.48145466, 0.4578275, 0.40821073], 'image_mean'),
    std: config.do_normalize === false ? [1, 1, 1] : triple(config.image_std, [0.26862954, 0.26130258, 0.27577711], 'image_std'),
  };
  for (const [key, value] of [['size.shortest_edge', spec.shortestEdge], ['crop_size.height', spec.cropHeight], ['crop_size.width', spec.cropWidth]] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new UnsupportedModelError(`${where}: ${key} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  // The crop is always taken (do_center_crop: false would hand the tower a picture of another size).
  if (spec.cropHeight !== imageSize || spec.cropWidth !== imageSize) throw new UnsupportedModelError(`${where}: crop ${spec.cropWidth}×${spec.cropHeight} does not match the tower's ${imageSize}×${imageSize} input`);
  return spec;
}
