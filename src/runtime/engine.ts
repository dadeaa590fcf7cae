// The engine a page or app talks to: load a model folder onto the GPU, then stream generations with
// greedy or seeded sampling (chosen on the GPU; only the token id comes back). Generations may overlap:
// the scheduler batches them into shared steps over a paged KV cache, and a follow-up chat turn reuses
// the cached pages of the conversation so far.
import { ContextOverflowError, EngineDisposedError, InvalidRequestError, ModelFileMissingError, ModelIntegrityError, StorageQuotaError } from '../errors.ts';
import { type AttentionPolicy, type DocumentInput, documentSpans } from '../kv/documents.ts';
import { GpuContext } from '../gpu/context.ts';
import { HttpModelFiles, type ModelFiles } from '../model/byte-source.ts';
import { CachedModelFiles, storageEstimate } from '../model/cached-files.ts';
import type { LlamaSpec } from '../model/config.ts';
import { type ArtifactManifest, ArtifactWeights, artifactSource } from '../model/artifact.ts';
import { forgetKeptConversion, keepConversion, keptConversionBytes, openKeptConversion } from '../model/kept-conversion.ts';
import { opfsAvailable } from '../model/opfs-store.ts';
import { SafetensorsCheckpoint } from '../model/safetensors.ts';
import { GpuLlama, type KvCacheFormat, MAX_SCORE_TARGETS, gpuIdleShare, weightBytesRead } from '../model/llama-gpu.ts';
import { llamaTensors } from '../model/llama-weights.ts';
import { type OpenedWeights, openWeights } from '../model/open.ts';
import { type LoadPlan, type LoadSettings, planLoad } from './plan.ts';
import type { WeightFormatOptions } from '../model/quant.ts';
import { type SamplingOptions, samplingConfig } from './sampling.ts';
import type { ChatContentPart, ChatMessage, TextCodec } from '../text/tokenizer.ts';
import type { ImagePreprocessSpec, VisionSpec } from '../model/llava-config.ts';
import { readVisionWeights } from '../model/llava-weights.ts';
import { GpuVisionEncoder, visionMatrixFormat } from '../model/vision-gpu.ts';
import { type ImageInput, isImageInput, readImage } from '../vision/image-input.ts';
import { preprocessImage } from '../vision/preprocess.ts';
import { ImageRows } from './image-rows.ts';
import { ChatCompletions, Completions } from './openai.ts';
import { type FinishReason, type GenerationChunk, type GenerationResult, Scheduler, type SequenceRequest, type TokenLogprob } from './scheduler.ts';
import { GenerationStream, streamResult } from './stream.ts';
import { MAX_TOP_LOGPROBS } from '../ops/log-softmax.ts';

export interface LoadOptions {
  /** A GPU to use (Node: `await getNodeGpu()` from 'tri-webgpu/node'); defaults to navigator.gpu. */
  gpu?: GPU;
  /**
   * Positions the KV cache holds, shared by all sequences. Default: the model's maximum, capped at 4096
   * (Tri-7B allows 32,768, whose f16 cache alone would take 16 GiB).
   */
  contextLength?: number;
  /** Most sequences decoding together (default 16). */
  maxSequences?: number;
  /**
   * Decode steps queued on the GPU at once: 2 (default) queues the next token's step while one runs, the
   * drawn ids never waiting for the CPU; 1 reads each step's ids before queuing the next (for comparison).
   */
  stepsInFlight?: 1 | 2;
  /**
   * Prefill (16 rows or more per step) through the tiled GEMM (true) or the row-quad kernel decode uses
   * (false). Default: whichever ran faster on this device, timed at load.
   */
  tiledPrefill?: boolean;
  /**
   * The subgroup variants of the kernels where the device has `subgroups`: split-K GEMVs that add their
   * shares by subgroup shuffles, and the sampler's reductions by subgroups first. true uses them (an
   * error where the device has none), false never; default: each where it ran faster here, timed at load.
   */
  subgroups?: boolean;
  /**
   * KV cache element type: f32 (exact), f16 (half the memory) or int8 with a scale per token and head
   * (about a quarter). Default: f32 with f32 weights, else f16.
   */
  kvCache?: KvCacheFormat;
  /**
   * Weight format on the GPU, converted from the checkpoint at load. Default: f32 when the model's
   * matrices take at most 256 MiB in f32 (tiny models run exactly), otherwise q4 (G=32).
   */
  weights?: WeightFormatOptions;
  /**
   * Keep downloaded model bytes in the browser's Cache API, so reloads and later visits read them
   * locally and an interrupted download resumes (default true for URLs where the Cache API exists).
   */
  cache?: boolean;
  /**
   * With the cache on, keep a checkpoint's converted weights (read back from the GPU) in the browser's
   * OPFS, so the next load reads the converted bytes (a quarter of bf16's for q4) and converts nothing;
   * the cached checkpoint weights are then dropped. Default true.
   */
  keepConverted?: boolean;
  /**
   * Refuse a model whose GPU buffers (weights, KV cache, activations) exceed this many bytes, before
   * anything is allocated or downloaded. Default: for CPU adapters the machine's memory; for real GPUs,
   * which WebGPU does not say the memory of, no limit beyond the device's own allocation failure.
   */
  maxGpuBytes?: number;
  /** Weight loading progress: bytes read (checkpoint tensors or artifact shards), rate and time left. */
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
}

/**
 * What a load is doing with its weights: 'download' while bytes arrive from the network, 'read' while
 * they come from this browser's storage, picked files or disk (each converted on the GPU, or verified and
 * uploaded, as it streams), then 'prepare' once every byte is in (the last conversions, and the kernels
 * timed on this GPU to pick the fastest); 'store' after a checkpoint's conversion, while the converted
 * weights are read back and kept in the browser's storage (keepConverted).
 */
export type LoadPhase = 'download' | 'read' | 'prepare' | 'store';

export interface LoadProgress {
  phase: LoadPhase;
  /** Whether the weights are converted on the GPU as they arrive (a Hugging Face checkpoint) or uploaded as they are (a pre-converted artifact). */
  converting: boolean;
  loadedBytes: number;
  totalBytes: number;
  /** Since the weights started; cached bytes count too, so a reload shows its (high) local rate. */
  bytesPerSecond: number;
  etaSeconds: number | undefined;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate; default 256. Stops earlier on an end-of-sequence token. */
  maxNewTokens?: number;
  /** Stop when the output contains this string or one of these (not included in the text). */
  stop?: string | readonly string[];
  signal?: AbortSignal;
  /**
   * Return each generated token's log-probability (natural log, under the model's own distribution:
   * before penalties and temperature), computed on the GPU, in chunks and the result.
   */
  logprobs?: boolean;
  /** With logprobs: also the 0..20 most likely tokens at each position. */
  topLogprobs?: number;
}

/** A document of a packed sequence: its text (or token ids) and a language tag for the xlda policy. */
export interface PackedDocument {
  text?: string;
  tokenIds?: readonly number[];
  language?: string;
}

const EXACT_F32_BYTES = 256 * 2 ** 20;
/** Downloads above this ask the browser for persistent storage (navigator.storage.persist()). */
const PERSIST_ABOVE_BYTES = 256 * 2 ** 20;
const DEFAULT_CONTEXT_LENGTH = 4096;

/** The default weight format for a model: exact f32 for tiny models, q4 otherwise. */
export function defaultWeightFormat(spec: LlamaSpec): WeightFormatOptions {
  const f32Bytes = llamaTensors(spec).reduce((sum, { shape }) => sum + shape.reduce((a, b) => a * b, 4), 0);
  return f32Bytes <= EXACT_F32_BYTES ? { format: 'f32' } : { format: 'q4', groupSize: 32 };
}

/** A checkpoint load in a browser with OPFS: its conversion is read from storage (kept) or kept after the load. */
interface KeepPlan {
  location: string;
  source: ArtifactManifest['source'];
  checkpoint: SafetensorsCheckpoint;
  kept: boolean;
}

export type { FinishReason, GenerationChunk, GenerationResult, TokenLogprob };

/** A generation: `for await (const { text } of stream)`, then `await stream.result` for finish reason, usage and timings. */
export type Generation = GenerationStream<GenerationChunk, GenerationResult>;

export type Prompt = string | readonly PromptMessage[] | { tokenIds: readonly number[] };

/**
 * A chat message; with a vision (llava) model its content may hold image parts, OpenAI's
 * `{ type: 'image_url', image_url: { url } }` or `{ type: 'image', image }` with a Blob, ImageBitmap,
 * canvas, ImageData or decoded pixels (Node: decodeImage from 'tri-webgpu/node').
 */
export interface PromptMessage {
  role: ChatMessage['role'];
  content: string | readonly PromptContentPart[];
}

export type PromptContentPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string } | string }
  | { type: 'image'; image: ImageInput };

/** One continuation's log-likelihood from TriEngine.score. */
export interface ContinuationScore {
  tokenIds: number[];
  /** Natural-log probability of each token given the prompt and the tokens before it. */
  logprobs: number[];
  /** Their sum: the continuation's log-likelihood. */
  total: number;
  /** Tokens of the prompt it followed, and how many of them came from shared KV pages (the same for every continuation of one call). */
  promptTokens: number;
  cachedPromptTokens: number;
}

export interface ScoreOptions {
  signal?: AbortSignal;
  /** Whether a text prompt is encoded with the tokenizer's special tokens (BOS); default true, as in generate(). */
  addSpecialTokens?: boolean;
}

export class TriEngine {
  readonly spec: LlamaSpec;
  readonly text: TextCodec;
  readonly gpu: GpuContext;
  /** The weight format the model runs in. */
  readonly weights: WeightFormatOptions;
  /**
   * The sampling the model's generation_config.json asks for (greedy when it does not sample). Not applied
   * by itself: generate() is greedy unless told otherwise; pass `{ ...engine.generationDefaults, ... }`.
   */
  readonly generationDefaults: SamplingOptions;
  /** OpenAI-style: `engine.chat.completions.create({ messages, stream: true })`. */
  readonly chat: { readonly completions: ChatCompletions };
  /** OpenAI-style raw-prompt completions: `engine.completions.create({ prompt, stream: true })`. */
  readonly completions: Completions;
  /** A vision (llava) model's tower and preprocessing; undefined for a text model. */
  readonly vision: { readonly spec: VisionSpec; readonly preprocess: ImagePreprocessSpec } | undefined;
  private readonly model: GpuLlama;
  private readonly scheduler: Scheduler;
  private readonly visionEncoder: GpuVisionEncoder | undefined;
  private readonly imageRows: ImageRows | undefined;
  private disposed = false;

  private constructor(gpu: GpuContext, model: GpuLlama, opened: OpenedWeights, weights: WeightFormatOptions, modelName: string, visionEncoder?: GpuVisionEncoder, stepsInFlight?: number) {
    const { text } = opened;
    this.vision = opened.vision;
    this.visionEncoder = visionEncoder;
    if (opened.vision) {
      const imageRows = (this.imageRows = new ImageRows(opened.vision.spec.imageSeqLength, opened.vision.spec.textHiddenSize));
      model.inputRows = (id) => imageRows.row(id);
    }
    this.gpu = gpu;
    this.generationDefaults = opened.generationDefaults;
    this.model = model;
    this.spec = model.spec;
    this.text = text;
    this.weights = weights;
    this.scheduler = new Scheduler(model, text, { stepsInFlight });
    this.chat = { completions: new ChatCompletions(this, modelName) };
    this.completions = new Completions(this, modelName);
  }

  /**
   * What loading `source` will take (download and cached bytes, GPU memory by group against this device,
   * storage quota) and whether it fits, with reasons: reads config, tokenizer and headers or manifest only.
   */
  static async plan(source: string | ModelFiles, options: LoadOptions | null = {}): Promise<LoadPlan> {
    const { opened, cache, gpu, settings, keep } = await TriEngine.open(source, options ?? {});
    try {
      const keepBytes = keep && !keep.kept ? keptConversionBytes(opened.spec, settings.weights) : 0;
      return planLoad(opened, settings, gpu, cache && { cachedBytes: await cache.cachedBytes(), storage: await storageEstimate(), keepBytes }, options?.maxGpuBytes);
    } finally {
      gpu.destroy();
    }
  }

  /**
   * Loads a model from a URL folder (Range requests; relative to the page) or any ModelFiles (picked
   * files, a Node directory): a Hugging Face checkpoint converted on the GPU, or a pre-converted artifact
   * (FORMAT.md). What cannot fit is refused before any weight byte moves (see plan()).
   */
  static async load(source: string | ModelFiles, options: LoadOptions | null = {}): Promise<TriEngine> {
    options ??= {};
    const { signal } = options;
    const { opened, cache, gpu, settings, name, keep } = await TriEngine.open(source, options);
    try {
      signal?.throwIfAborted();
      if (cache) await TriEngine.reserveStorage(cache, weightBytesRead(opened.spec, opened.weights) + (keep && !keep.kept ? keptConversionBytes(opened.spec, settings.weights) : 0));
      const started = performance.now();
      // Bytes came from the network when the browser cache missed since the last report (or there is none).
      const remote = typeof source === 'string' || source instanceof HttpModelFiles;
      let misses = cache?.stats.misses ?? 0;
      const report = (phase: LoadPhase | undefined, converting: boolean, loadedBytes: number, totalBytes: number) => {
        const seconds = (performance.now() - started) / 1000;
        const bytesPerSecond = seconds > 0 ? loadedBytes / seconds : 0;
        const fetched = cache ? cache.stats.misses > misses : remote;
        misses = cache?.stats.misses ?? 0;
        phase ??= loadedBytes >= totalBytes ? 'prepare' : fetched ? 'download' : 'read';
        options.onProgress?.({ phase, converting, loadedBytes, totalBytes, bytesPerSecond, etaSeconds: bytesPerSecond > 0 ? (totalBytes - loadedBytes) / bytesPerSecond : undefined });
      };
      const loadWeights = (weights: OpenedWeights['weights']) => {
        const converting = !(weights instanceof ArtifactWeights);
        return GpuLlama.load(gpu, opened.spec, weights, {
          ...settings, maxGpuBytes: options.maxGpuBytes, tiledPrefill: options.tiledPrefill, subgroups: options.subgroups, signal,
          onProgress: (loadedBytes, totalBytes) => report(undefined, converting, loadedBytes, totalBytes),
        });
      };
      let model: GpuLlama;
      try {
        model = await loadWeights(opened.weights);
      } catch (error) {
        // A kept conversion that fails verification (or went missing from storage) is dropped, and the
        // checkpoint converted again (and kept again below): a healed load, never a wrong one.
        if (!keep?.kept || !(error instanceof ModelIntegrityError || error instanceof ModelFileMissingError)) throw error;
        await forgetKeptConversion(keep.location, settings.weights);
        keep.kept = false;
        model = await loadWeights(keep.checkpoint);
      }
      if (keep && !keep.kept) {
        // Keep what the GPU converted, so the next load reads the converted bytes and converts nothing;
        // then the checkpoint's cached weight ranges are no longer needed (their headers stay: the next
        // load checks the kept copy against them, offline too).
        const kept = await keepConversion(model, keep.location, settings.weights, keep.source, { signal, onProgress: (done, total) => report('store', true, done, total) }).catch((error: unknown) => {
          model.destroy();
          throw error;
        });
        if (kept) await cache!.forgetTensorData(keep.checkpoint);
      }
      let visionEncoder: GpuVisionEncoder | undefined;
      if (opened.vision) {
        const checkpoint = (keep?.checkpoint ?? opened.weights) as SafetensorsCheckpoint;
        const weights = await readVisionWeights(opened.vision.spec, checkpoint, signal).catch((error: unknown) => {
          model.destroy();
          throw error;
        });
        visionEncoder = GpuVisionEncoder.create(gpu, opened.vision.spec, weights, visionMatrixFormat(settings.weights));
      }
      signal?.throwIfAborted();
      return new TriEngine(gpu, model, opened, settings.weights, name, visionEncoder, options.stepsInFlight);
    } catch (error) {
      gpu.destroy();
      throw error;
    }
  }

  /** Files, spec, tokenizer and headers (or manifest), a GPU, and the settings a load would use. */
  private static async open(source: string | ModelFiles, options: LoadOptions): Promise<{ opened: OpenedWeights; cache: CachedModelFiles | undefined; gpu: GpuContext; settings: LoadSettings; name: string; keep: KeepPlan | undefined }> {
    checkLoadOptions(options);
    const { signal } = options;
    signal?.throwIfAborted();
    if (typeof source !== 'string' && (typeof source !== 'object' || source === null || typeof source.open !== 'function')) {
      throw new InvalidRequestError('the model source must be a URL string or ModelFiles (HttpModelFiles, BlobModelFiles, NodeModelFiles)');
    }
    const remote = typeof source === 'string' ? new HttpModelFiles(source) : source;
    const files = typeof source === 'string' && options.cache !== false ? await CachedModelFiles.open(remote) : remote;
    let opened = await openWeights(files, signal);
    signal?.throwIfAborted();
    if (options.contextLength !== undefined && options.contextLength > opened.spec.maxPositions) {
      throw new InvalidRequestError(`contextLength ${options.contextLength} is more than the model's ${opened.spec.maxPositions} positions`);
    }
    const weights = opened.weights instanceof ArtifactWeights ? opened.weights.checkFormat(options.weights) : (options.weights ?? defaultWeightFormat(opened.spec));
    const settings: LoadSettings = {
      weights,
      contextLength: options.contextLength ?? Math.min(opened.spec.maxPositions, DEFAULT_CONTEXT_LENGTH),
      kvCache: options.kvCache ?? (weights.format === 'f32' ? 'f32' : 'f16'),
      maxSequences: options.maxSequences,
    };
    const cache = files instanceof CachedModelFiles ? files : undefined;
    let keep: KeepPlan | undefined;
    // Vision models are not kept: the kept artifact would not hold the vision tower, read from the checkpoint.
    if (cache && options.keepConverted !== false && opfsAvailable() && opened.weights instanceof SafetensorsCheckpoint && !opened.vision) {
      // A checkpoint converted on an earlier visit loads from its kept conversion (the headers just read tell whether it is still this checkpoint).
      const checkpoint = opened.weights;
      const sourceDigests = await artifactSource(files, checkpoint, signal);
      const kept = await openKeptConversion(cache.location, weights, sourceDigests, signal);
      keep = { location: cache.location, source: sourceDigests, checkpoint, kept: kept !== undefined };
      if (kept) opened = { ...opened, weights: kept };
    }
    const gpu = await GpuContext.create(options.gpu);
    const name = typeof source === 'string' ? remote.location : 'local model';
    return { opened, cache, gpu, settings, name, keep };
  }

  /**
   * Before a download into the browser cache: refuse it (StorageQuotaError) when the quota cannot hold
   * what is not cached yet, and ask for persistent storage when it is large, so the browser does not
   * evict gigabytes under storage pressure.
   */
  private static async reserveStorage(cache: CachedModelFiles, downloadBytes: number): Promise<void> {
    const needed = Math.max(0, downloadBytes - (await cache.cachedBytes()));
    const storage = await storageEstimate();
    if (storage && needed > storage.quota - storage.usage) throw new StorageQuotaError(needed, storage.quota - storage.usage);
    if (needed > PERSIST_ABOVE_BYTES) await (globalThis.navigator as Navigator | undefined)?.storage?.persist?.().catch(() => false);
  }

  /** GPU dispatches recorded for the last decoded token (a measure of fusion; 6 per layer + 3). */
  get dispatchesPerDecodedToken(): number {
    return this.model.lastDispatchCount;
  }

  /** For benchmarks: whether decode steps replay their layers' recorded dispatches (default true; GpuLlama.replayDecodeLayers). */
  get replayDecodeLayers(): boolean {
    return this.model.replayDecodeLayers;
  }

  set replayDecodeLayers(replay: boolean) {
    this.model.replayDecodeLayers = replay;
  }

  /**
   * For benchmarks: times every step on the GPU from now (timestamp queries; a small readback per step).
   * The function returned stops that and gives the share of the time since in which the GPU ran no step
   * (what the host's round trips cost); undefined without timestamp-query or with under two steps.
   */
  measureGpuIdle(): () => number | undefined {
    this.model.gpuSpans.length = 0;
    this.model.timeGpu = true;
    return () => {
      this.model.timeGpu = false;
      const spans = this.model.gpuSpans.splice(0);
      return spans.length >= 2 ? gpuIdleShare(spans) : undefined;
    };
  }

  /** Bytes of the GPU buffers the model holds (weights, KV cache, activations), as allocated; plan() predicts them. */
  get gpuBytes(): number {
    return this.model.allocatedBytes;
  }

  get contextLength(): number {
    return this.model.contextLength;
  }

  /**
   * Token ids for a prompt: plain text is encoded as the tokenizer says; messages go through the chat
   * template; token ids must be whole numbers below the vocabulary size. Anything else: InvalidRequestError.
   */
  promptIds(prompt: Prompt): number[] {
    // Image parts become image rows only on the way to generate() (encoded on the GPU first).
    if (hasImageParts(prompt)) throw new InvalidRequestError('a prompt with images goes to generate() or chat.completions; promptIds() and score() take text only');
    return this.templateIds(prompt);
  }

  private templateIds(prompt: Prompt): number[] {
    let ids: number[];
    if (typeof prompt === 'string') ids = this.text.encode(prompt);
    else if (Array.isArray(prompt)) ids = this.text.applyChatTemplate(checkMessages(prompt, this.vision !== undefined));
    else if (prompt !== null && typeof prompt === 'object' && 'tokenIds' in prompt) ids = checkTokenIds(prompt.tokenIds, this.spec.vocabSize, 'tokenIds');
    else throw new InvalidRequestError('a prompt is a string, an array of chat messages, or { tokenIds }');
    if (ids.length === 0) throw new InvalidRequestError('the prompt is empty (it encodes to no tokens)');
    return ids;
  }

  /**
   * Streams a continuation: yields text deltas as tokens are decoded; `await stream.result` (or the
   * generator's return value) gives the whole result. Errors (prompt too long, invalid settings) reject
   * the first next() before anything runs; the engine stays usable.
   * Several generations may run at once; they share the GPU step by step.
   */
  generate(prompt: Prompt, options: GenerateOptions | null = {}): Generation {
    if (!hasImageParts(prompt)) return this.run(() => ({ promptIds: this.promptIds(prompt) }), options);
    // Images are decoded and encoded (on the GPU) before the prompt is submitted: an error rejects the first next().
    return new GenerationStream(() => {
      const prepared = this.imagePromptIds(prompt, options?.signal ?? undefined);
      prepared.catch(() => {}); // its error surfaces through the events; a stream closed before them must not leave it unhandled
      let inner: ReturnType<TriEngine['submit']> | undefined;
      let closed = false;
      const submit = (input: { promptIds: number[] }) => this.submit(input, options);
      async function* events(): AsyncGenerator<GenerationChunk, GenerationResult> {
        const promptIds = await prepared;
        inner = submit({ promptIds });
        if (closed) inner.close();
        return yield* inner.events;
      }
      return { events: events(), close: () => ((closed = true), inner?.close()) };
    });
  }

  /**
   * Token ids of a chat with images: the template renders each image part as the `<image>` token, which
   * becomes imageSeqLength image-row ids, whose features the vision tower computes once per picture.
   */
  private async imagePromptIds(messages: readonly PromptMessage[], signal: AbortSignal | undefined): Promise<number[]> {
    // The template's ids first: for a text model this names the image part it cannot take.
    const ids = this.templateIds(messages);
    const { vision, visionEncoder, imageRows } = this;
    if (!vision || !visionEncoder || !imageRows) throw new InvalidRequestError('this model has no vision tower: image parts need a vision (llava) model');
    const images = messageImages(messages);
    const imageToken = vision.spec.imageTokenId;
    const slots = ids.filter((id) => id === imageToken).length;
    if (slots !== images.length) throw new InvalidRequestError(`the prompt has ${images.length} images but the chat template placed ${slots} <image> tokens`);
    const rows: number[][] = [];
    for (const image of images) {
      const pixels = preprocessImage(await readImage(image, signal), vision.preprocess);
      signal?.throwIfAborted();
      if (this.disposed) throw new EngineDisposedError();
      const key = ImageRows.key(pixels);
      rows.push(imageRows.lookup(key) ?? imageRows.add(key, await visionEncoder.encode(pixels)));
    }
    let next = 0;
    const expanded = ids.flatMap((id) => (id === imageToken ? rows[next++]! : [id]));
    if (expanded.length >= this.contextLength) throw new ContextOverflowError(expanded.length, this.contextLength);
    return expanded;
  }

  /**
   * Packs documents into one sequence under an attention policy (DESIGN.md §1: 'causal', 'document',
   * 'xlda' by language, groups or explicit visibility) and continues the last document.
   */
  generatePacked(documents: readonly PackedDocument[], policy: AttentionPolicy, options: GenerateOptions | null = {}): Generation {
    return this.run(() => {
      if (!Array.isArray(documents) || documents.length === 0) throw new InvalidRequestError('generatePacked needs a non-empty array of documents');
      const ids = documents.map((document, i) => {
        if (document?.tokenIds) return checkTokenIds(document.tokenIds, this.spec.vocabSize, `documents[${i}].tokenIds`);
        if (typeof document?.text === 'string') return this.text.encode(document.text);
        throw new InvalidRequestError(`document ${i} has neither text nor tokenIds`);
      });
      const spans = documentSpans(ids.map((tokens, i): DocumentInput => ({ length: tokens.length, language: documents[i]!.language })), policy);
      // The generated tokens continue the last document.
      spans.at(-1)!.end = 0xffffffff;
      return { promptIds: ids.flat(), documents: spans };
    }, options);
  }

  /** A stream that tokenizes and submits on its first next(), so every request error rejects that call. */
  private run(input: () => Pick<SequenceRequest, 'promptIds' | 'documents'>, options: GenerateOptions | null): Generation {
    return new GenerationStream(() => this.submit(input(), options));
  }

  private submit(input: Pick<SequenceRequest, 'promptIds' | 'documents'>, options: GenerateOptions | null): { events: AsyncGenerator<GenerationChunk, GenerationResult>; close: () => void } {
    if (this.disposed) throw new EngineDisposedError();
    options ??= {};
    const sampling = samplingConfig(options);
    const maxNewTokens = options.maxNewTokens ?? 256;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new InvalidRequestError(`maxNewTokens must be a whole number ≥ 1 (got ${maxNewTokens})`);
    const stop = typeof options.stop === 'string' ? [options.stop] : options.stop;
    if (stop !== undefined && (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string'))) {
      throw new InvalidRequestError('stop must be a string or an array of strings');
    }
    // A consumer that stops iterating early aborts the sequence, so its pages are freed.
    const stopped = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stopped.signal]) : stopped.signal;
    const topLogprobs = options.topLogprobs ?? 0;
    if (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) throw new InvalidRequestError(`topLogprobs must be a whole number in 0..${MAX_TOP_LOGPROBS} (got ${options.topLogprobs})`);
    if (options.topLogprobs !== undefined && !options.logprobs) throw new InvalidRequestError('topLogprobs needs logprobs: true');
    const events = this.scheduler.submit({
      ...input,
      ...(options.logprobs ? { logprobs: { topK: topLogprobs } } : {}),
      sampling,
      maxNewTokens: Math.min(maxNewTokens, this.contextLength - input.promptIds.length),
      stopIds: new Set(this.spec.eosTokenIds),
      stopStrings: stop,
      signal,
    });
    return { events, close: () => stopped.abort() };
  }

  /**
   * Log-likelihood of each continuation given the prompt: per continuation token, log P(token | prompt and
   * the continuation's earlier tokens) under the model's full-vocabulary softmax (natural log), and their
   * sum. The log-softmax runs on the GPU and only these numbers are read back. The prompt is prefilled
   * once: every continuation's first token is scored from its last row, and a longer continuation's
   * sequence takes the prompt's full KV pages from the cache. Continuations are text (encoded without
   * special tokens, as they follow the prompt) or `{ tokenIds }`. Scores of concurrent calls are batched
   * with each other and with generations.
   */
  async score(prompt: Prompt, continuations: readonly (string | { tokenIds: readonly number[] })[], options: ScoreOptions = {}): Promise<ContinuationScore[]> {
    if (this.disposed) throw new EngineDisposedError();
    const promptIds = typeof prompt === 'string' && options.addSpecialTokens === false ? this.text.encode(prompt, { addSpecialTokens: false }) : this.promptIds(prompt);
    if (promptIds.length === 0) throw new InvalidRequestError('the prompt is empty (it encodes to no tokens)');
    if (!Array.isArray(continuations) || continuations.length === 0) throw new InvalidRequestError('score needs a non-empty array of continuations');
    const tokenized = continuations.map((continuation, i) => {
      const ids = typeof continuation === 'string' ? this.text.encode(continuation, { addSpecialTokens: false }) : checkTokenIds(continuation?.tokenIds, this.spec.vocabSize, `continuations[${i}].tokenIds`);
      if (ids.length === 0) throw new InvalidRequestError(`continuation ${i} is empty (it encodes to no tokens)`);
      if (promptIds.length + ids.length > this.contextLength) throw new ContextOverflowError(promptIds.length + ids.length, this.contextLength);
      return ids;
    });
    const { signal } = options;
    // Every continuation's first token, from the prompt's last row: one request per MAX_SCORE_TARGETS ids.
    const firsts = [...new Set(tokenized.map((ids) => ids[0]!))];
    const firstLogprob = new Map<number, number>();
    let cachedPromptTokens = 0;
    for (let start = 0; start < firsts.length; start += MAX_SCORE_TARGETS) {
      const group = firsts.slice(start, start + MAX_SCORE_TARGETS);
      const { rows, cachedTokens } = await this.scheduler.score({ ids: promptIds, targets: [group], ...(signal ? { signal } : {}) });
      if (start === 0) cachedPromptTokens = cachedTokens;
      group.forEach((id, i) => firstLogprob.set(id, rows[0]!.logprobs[i]!));
    }
    // The rest of each continuation: token j scored from the row of token j − 1, in pieces of at most
    // maxScoredPositions rows; each piece takes the full pages before it (prompt, earlier pieces) from the cache.
    const piece = this.scheduler.maxScoredPositions;
    const rest = await Promise.all(tokenized.map(async (ids) => {
      const logprobs: number[] = [];
      for (let start = 1; start < ids.length; start += piece) {
        const end = Math.min(ids.length, start + piece);
        const { rows } = await this.scheduler.score({ ids: [...promptIds, ...ids.slice(0, end - 1)], targets: ids.slice(start, end).map((id) => [id]), ...(signal ? { signal } : {}) });
        logprobs.push(...rows.map((row) => row.logprobs[0]!));
      }
      return logprobs;
    }));
    return tokenized.map((ids, i) => {
      const logprobs = [firstLogprob.get(ids[0]!)!, ...rest[i]!];
      return { tokenIds: ids, logprobs, total: logprobs.reduce((sum, value) => sum + value, 0), promptTokens: promptIds.length, cachedPromptTokens };
    });
  }

  /** Runs generate() to the end and returns the result. */
  complete(prompt: Prompt, options: GenerateOptions | null = {}): Promise<GenerationResult> {
    return streamResult(this.generate(prompt, options));
  }

  /** Sequences generating now, and the prompt tokens prefilled or taken from the KV cache so far. */
  get schedulerStats(): { activeSequences: number; prefilledTokens: number; cachedTokens: number; steps: number; overlappedSteps: number; freeKvPages: number } {
    return { activeSequences: this.scheduler.activeSequences, ...this.scheduler.stats, freeKvPages: this.scheduler.kv.freePageCount };
  }

  /** Frees the GPU memory. Generations still running end with EngineDisposedError; later calls throw it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.scheduler.close(new EngineDisposedError('the engine was disposed while this generation ran'));
    this.model.destroy();
    this.visionEncoder?.destroy();
    this.gpu.destroy();
  }
}

const WEIGHT_FORMATS = ['f32', 'f16', 'q4'];
const Q4_GROUP_SIZES = [32, 64, 128];

/** Refuses load options that would fail late or silently (a zero context, an unknown format). */
function checkLoadOptions(options: LoadOptions): void {
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new InvalidRequestError(message);
  };
  const { contextLength, maxSequences, kvCache, weights } = options;
  check(contextLength === undefined || (Number.isInteger(contextLength) && contextLength >= 2), `contextLength must be a whole number ≥ 2 (got ${contextLength})`);
  check(maxSequences === undefined || (Number.isInteger(maxSequences) && maxSequences >= 1 && maxSequences <= 256), `maxSequences must be a whole number in 1..256 (got ${maxSequences})`);
  check(options.tiledPrefill === undefined || typeof options.tiledPrefill === 'boolean', 'tiledPrefill must be a boolean');
  check(options.subgroups === undefined || typeof options.subgroups === 'boolean', 'subgroups must be a boolean');
  check(options.stepsInFlight === undefined || options.stepsInFlight === 1 || options.stepsInFlight === 2, `stepsInFlight must be 1 or 2 (got ${String(options.stepsInFlight)})`);
  check(kvCache === undefined || kvCache === 'f32' || kvCache === 'f16' || kvCache === 'int8', `kvCache must be 'f32', 'f16' or 'int8' (got ${String(kvCache)})`);
  check(options.maxGpuBytes === undefined || (Number.isFinite(options.maxGpuBytes) && options.maxGpuBytes > 0), `maxGpuBytes must be a positive number (got ${options.maxGpuBytes})`);
  if (weights !== undefined) {
    check(typeof weights === 'object' && weights !== null && WEIGHT_FORMATS.includes(weights.format), `weights.format must be one of ${WEIGHT_FORMATS.join(', ')} (got ${String(weights?.format)})`);
    check(weights.groupSize === undefined || (weights.format === 'q4' && Q4_GROUP_SIZES.includes(weights.groupSize)), `weights.groupSize must be 32, 64 or 128, with format 'q4' (got ${weights.groupSize})`);
    check(weights.withMin === undefined || (weights.format === 'q4' && typeof weights.withMin === 'boolean'), 'weights.withMin is a boolean, for q4 only');
  }
}

/** Messages as the chat template sees them (image parts without their pixels), or InvalidRequestError. */
function checkMessages(messages: readonly PromptMessage[], vision: boolean): ChatMessage[] {
  if (messages.length === 0) throw new InvalidRequestError('the chat has no messages');
  return messages.map((message, i) => {
    if (message === null || typeof message !== 'object' || typeof message.role !== 'string' || (typeof message.content !== 'string' && !Array.isArray(message.content))) {
      throw new InvalidRequestError(`messages[${i}] must be { role: string, content: string or parts }`);
    }
    if (typeof message.content === 'string') return message as ChatMessage;
    const content = message.content.map((part, j): ChatContentPart => {
      if (part?.type === 'text' && typeof part.text === 'string') return { type: 'text', text: part.text };
      if (isImagePart(part)) {
        if (!vision) throw new InvalidRequestError(`messages[${i}].content[${j}]: this model has no vision tower, so it cannot take an ${part.type} part`);
        imageOf(part, `messages[${i}].content[${j}]`);
        return { type: 'image' };
      }
      throw new InvalidRequestError(`messages[${i}].content[${j}]: parts are { type: 'text', text }, { type: 'image_url', image_url: { url } } or { type: 'image', image }`);
    });
    return { role: message.role, content };
  });
}

/** The picture of an image part, or InvalidRequestError. */
function imageOf(part: PromptContentPart, where: string): ImageInput {
  const image = part.type === 'image' ? part.image : part.type === 'image_url' ? (typeof part.image_url === 'string' ? part.image_url : part.image_url?.url) : undefined;
  if (!isImageInput(image)) throw new InvalidRequestError(`${where}: an image part needs image_url.url (a URL or data: URL) or image (a Blob, ImageBitmap, canvas, ImageData or decoded pixels)`);
  return image;
}

const isImagePart = (part: PromptContentPart | undefined) => part?.type === 'image' || part?.type === 'image_url';

/** Whether a prompt is a chat with image parts (not yet checked). */
function hasImageParts(prompt: Prompt): prompt is readonly PromptMessage[] {
  return Array.isArray(prompt) && prompt.some((message: PromptMessage | undefined) => Array.isArray(message?.content) && message.content.some(isImagePart));
}

/** Every image of a chat, in order. */
function messageImages(messages: readonly PromptMessage[]): ImageInput[] {
  return messages.flatMap((message, i) => (Array.isArray(message?.content) ? message.content : [])
    .flatMap((part, j) => (isImagePart(part) ? [imageOf(part, `messages[${i}].content[${j}]`)] : [])));
}

/** Token ids as given, or InvalidRequestError: each a whole number in [0, vocabSize). */
function checkTokenIds(ids: readonly number[], vocabSize: number, what: string): number[] {
  if (!Array.isArray(ids)) throw new InvalidRequestError(`${what} must be an array of token ids`);
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) throw new InvalidRequestError(`${what}[${bad}] = ${String(ids[bad])} is not a token id of this model (0..${vocabSize - 1})`);
  return [...ids];
}
