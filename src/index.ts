// The public API of tri-webgpu. Node users also import 'tri-webgpu/node' for getNodeGpu and NodeModelFiles.
export { TriEngine, defaultWeightFormat } from './runtime/engine.ts';
export { WorkerEngine } from './worker/client.ts';
export type { ContinuationScore, FinishReason, GenerateOptions, Generation, GenerationChunk, GenerationResult, LoadOptions, LoadPhase, LoadProgress, Prompt, PromptContentPart, PromptMessage, ScoreOptions, TokenLogprob } from './runtime/engine.ts';
export type { ImageInput } from './vision/image-input.ts';
export type { RawImage } from './vision/preprocess.ts';
export type { LoadPlan, LoadSettings } from './runtime/plan.ts';
export { GenerationStream } from './runtime/stream.ts';
export type { SamplingOptions } from './runtime/sampling.ts';
export type {
  ChatCompletion, ChatCompletionChunk, ChatCompletionLogprobs, ChatCompletionTokenLogprob, ChatCompletionContentPart, ChatCompletionMessageParam, ChatCompletionRequest, ChatCompletions, Completion,
  CompletionChunk, CompletionFinishReason, CompletionLogprobs, CompletionRequest, Completions, CompletionUsage, RequestOptions,
} from './runtime/openai.ts';
export type { AttentionPolicy } from './kv/documents.ts';
export type { PackedDocument } from './runtime/engine.ts';
export type { KvCacheFormat } from './model/llama-gpu.ts';
export type { Q4GroupSize, WeightFormat, WeightFormatOptions } from './model/quant.ts';
export { BlobModelFiles, HttpModelFiles } from './model/byte-source.ts';
export { CachedModelFiles, MODEL_CACHE_NAME, clearModelCache, deleteCachedModel, listCachedModels, storageEstimate } from './model/cached-files.ts';
export type { CachedModel } from './model/cached-files.ts';
export type { ByteSource, ModelFiles } from './model/byte-source.ts';
export type { LlamaSpec, RopeScaling } from './model/config.ts';
export type { ChatMessage } from './text/tokenizer.ts';
export { GpuContext, browserGpu } from './gpu/context.ts';
export type { GpuCapabilities } from './gpu/context.ts';
export {
  ContextOverflowError,
  DeviceLostError,
  EngineDisposedError,
  GpuLimitError,
  GpuOutOfMemoryError,
  InvalidRequestError,
  KvCacheFullError,
  ModelIntegrityError,
  ModelFileMissingError,
  ModelFileReadError,
  SafetensorsFormatError,
  StorageQuotaError,
  TokenizerError,
  TriWebGPUError,
  UnsupportedModelError,
  WebGPUUnavailableError,
} from './errors.ts';
export { ArtifactWeights, MANIFEST_FILE, convertModel } from './model/artifact.ts';
export type { ArtifactManifest, ArtifactSink } from './model/artifact.ts';
