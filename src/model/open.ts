// Opens a model folder: config → spec, safetensors headers or an artifact's manifest (no weights read yet), tokenizer.
import { UnsupportedModelError } from '../errors.ts';
import { TextCodec } from '../text/tokenizer.ts';
import { type ModelFiles, readJson, readJsonIfPresent } from './byte-source.ts';
import { type LlamaSpec, parseLlamaConfig } from './config.ts';
import { checkLlamaCheckpoint } from './llama-weights.ts';
import { SafetensorsCheckpoint } from './safetensors.ts';
import { ArtifactWeights, readManifest } from './artifact.ts';
import { type ImagePreprocessSpec, type VisionSpec, isLlavaConfig, parseLlavaConfig, parsePreprocessorConfig } from './llava-config.ts';
import { languageTensorNames, visionTensorLayout } from './llava-weights.ts';
import { type SamplingOptions, generationDefaults } from '../runtime/sampling.ts';

export interface OpenedModel {
  readonly spec: LlamaSpec;
  readonly checkpoint: SafetensorsCheckpoint;
  readonly text: TextCodec;
  /** The sampling generation_config.json asks for (greedy when it does not sample). */
  readonly generationDefaults: SamplingOptions;
  /** A llava model's vision half (its tensors are in the checkpoint). */
  readonly vision?: OpenedVision;
}

export interface OpenedVision {
  readonly spec: VisionSpec;
  readonly preprocess: ImagePreprocessSpec;
}

type Json = Record<string, unknown>;

/** A model folder of either kind: a plain checkpoint, or a pre-converted artifact (FORMAT.md). */
export interface OpenedWeights {
  readonly spec: LlamaSpec;
  readonly text: TextCodec;
  readonly weights: SafetensorsCheckpoint | ArtifactWeights;
  readonly generationDefaults: SamplingOptions;
  readonly vision?: OpenedVision;
}

/** Opens an artifact when the folder has a manifest, else the checkpoint (both read no weights yet). */
export async function openWeights(files: ModelFiles, signal?: AbortSignal): Promise<OpenedWeights> {
  const manifest = await readManifest(files, signal);
  if (!manifest) {
    const { checkpoint, ...opened } = await openModel(files, signal);
    return { ...opened, weights: checkpoint };
  }
  const opened = await openSpecAndText(files, signal);
  if (opened.vision) throw new UnsupportedModelError('a vision (llava) model loads from its Hugging Face checkpoint: artifacts do not hold the vision tower yet');
  return { ...opened, weights: new ArtifactWeights(files, manifest) };
}

export async function openModel(files: ModelFiles, signal?: AbortSignal): Promise<OpenedModel> {
  const opened = await openSpecAndText(files, signal);
  const checkpoint = await SafetensorsCheckpoint.open(files, signal);
  if (!opened.vision) {
    checkLlamaCheckpoint(opened.spec, checkpoint);
    return { ...opened, checkpoint };
  }
  const spec = { ...opened.spec, tensorNames: languageTensorNames(checkpoint) };
  checkLlamaCheckpoint(spec, checkpoint);
  visionTensorLayout(opened.vision.spec, checkpoint); // every vision tensor there, with its shape
  return { ...opened, spec, checkpoint };
}

async function openSpecAndText(files: ModelFiles, signal: AbortSignal | undefined): Promise<{ spec: LlamaSpec; text: TextCodec; generationDefaults: SamplingOptions; vision?: OpenedVision }> {
  const config = (await readJson(files, 'config.json', signal)) as Json;
  const generationConfig = ((await readJsonIfPresent(files, 'generation_config.json', signal)) ?? {}) as Json;
  let vision: OpenedVision | undefined;
  let textConfig = config;
  if (isLlavaConfig(config)) {
    const llava = parseLlavaConfig(config);
    textConfig = llava.textConfig;
    const preprocessor = (await readJsonIfPresent(files, 'preprocessor_config.json', signal)) as Json | undefined;
    vision = { spec: llava.vision, preprocess: parsePreprocessorConfig(preprocessor, llava.vision.tower.imageSize) };
  }
  const parsed = parseLlamaConfig(textConfig, generationConfig);
  if (vision && vision.spec.imageTokenId >= parsed.vocabSize) throw new UnsupportedModelError(`config.json: image_token_index ${vision.spec.imageTokenId} is outside the vocabulary (${parsed.vocabSize})`);
  const text = await TextCodec.load(files, signal);
  const tokenizerEos = text.eosToken === undefined ? undefined : text.tokenId(text.eosToken);
  const spec: LlamaSpec = {
    ...parsed,
    eosTokenIds: tokenizerEos === undefined || parsed.eosTokenIds.includes(tokenizerEos)
      ? parsed.eosTokenIds
      : [...parsed.eosTokenIds, tokenizerEos],
  };
  if (spec.eosTokenIds.length === 0) throw new UnsupportedModelError('no eos_token_id in config.json, generation_config.json or tokenizer_config.json');
  return { spec, text, generationDefaults: generationDefaults(generationConfig), ...(vision ? { vision } : {}) };
}
