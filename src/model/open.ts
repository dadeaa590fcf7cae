// Opens a model folder: config → spec, safetensors headers (no weights read yet), tokenizer.
import { UnsupportedModelError } from '../errors.ts';
import { TextCodec } from '../text/tokenizer.ts';
import { type ModelFiles, readJson, readJsonIfPresent } from './byte-source.ts';
import { type LlamaSpec, parseLlamaConfig } from './config.ts';
import { checkLlamaCheckpoint } from './llama-weights.ts';
import { SafetensorsCheckpoint } from './safetensors.ts';

export interface OpenedModel {
  readonly spec: LlamaSpec;
  readonly checkpoint: SafetensorsCheckpoint;
  readonly text: TextCodec;
}

type Json = Record<string, unknown>;

export async function openModel(files: ModelFiles, signal?: AbortSignal): Promise<OpenedModel> {
  const config = (await readJson(files, 'config.json', signal)) as Json;
  const generationConfig = ((await readJsonIfPresent(files, 'generation_config.json', signal)) ?? {}) as Json;
  const parsed = parseLlamaConfig(config, generationConfig);
  const text = await TextCodec.load(files, signal);
  const tokenizerEos = text.eosToken === undefined ? undefined : text.tokenId(text.eosToken);
  const spec: LlamaSpec = {
    ...parsed,
    eosTokenIds: tokenizerEos === undefined || parsed.eosTokenIds.includes(tokenizerEos)
      ? parsed.eosTokenIds
      : [...parsed.eosTokenIds, tokenizerEos],
  };
  if (spec.eosTokenIds.length === 0) throw new UnsupportedModelError('no eos_token_id in config.json, generation_config.json or tokenizer_config.json');
  const checkpoint = await SafetensorsCheckpoint.open(files, signal);
  checkLlamaCheckpoint(spec, checkpoint);
  return { spec, checkpoint, text };
}
