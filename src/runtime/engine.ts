// The engine a page or app talks to: load a model folder onto the GPU, then stream generations with
// greedy or seeded sampling (chosen on the GPU; only the token id comes back). One sequence at a time.
import { ContextOverflowError, TriWebGPUError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { HttpModelFiles, type ModelFiles } from '../model/byte-source.ts';
import type { LlamaSpec } from '../model/config.ts';
import { GpuLlama } from '../model/llama-gpu.ts';
import { openModel } from '../model/open.ts';
import type { WeightFormatOptions } from '../model/quant.ts';
import { type SamplingOptions, samplingConfig } from './sampling.ts';
import { StreamDecoder } from '../text/stream-decoder.ts';
import type { ChatMessage, TextCodec } from '../text/tokenizer.ts';

export interface LoadOptions {
  /** A GPU to use (Node: getNodeGpu() from 'tri-webgpu/node'); defaults to navigator.gpu. */
  gpu?: GPU;
  contextLength?: number;
  /**
   * Weight format on the GPU, converted from the checkpoint at load. Default: f32 when the model's
   * matrices take at most 256 MiB in f32 (tiny models run exactly), otherwise q4 (G=32).
   */
  weights?: WeightFormatOptions;
  /** Weight loading progress in checkpoint bytes. */
  onProgress?: (progress: { loadedBytes: number; totalBytes: number }) => void;
  signal?: AbortSignal;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate; default 256. Stops earlier on an end-of-sequence token. */
  maxNewTokens?: number;
  signal?: AbortSignal;
}

const EXACT_F32_BYTES = 256 * 2 ** 20;

/** The default weight format for a model: exact f32 for tiny models, q4 otherwise. */
export function defaultWeightFormat(spec: LlamaSpec): WeightFormatOptions {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize, numLayers } = spec;
  const perLayer = h * (numHeads + 2 * numKvHeads) * headDim + numHeads * headDim * h + 3 * h * f;
  const f32Bytes = 4 * (numLayers * perLayer + 2 * vocabSize * h);
  return f32Bytes <= EXACT_F32_BYTES ? { format: 'f32' } : { format: 'q4', groupSize: 32 };
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationChunk {
  /** New text, never a broken UTF-8 character (may be '' while a character is incomplete). */
  text: string;
  tokenId: number;
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  usage: { promptTokens: number; completionTokens: number };
  /** Seconds spent in prefill, and decode tokens per second after the first token. */
  timings: { prefillSeconds: number; decodeTokensPerSecond: number };
}

export type Prompt = string | readonly ChatMessage[] | { tokenIds: readonly number[] };

export class TriEngine {
  readonly spec: LlamaSpec;
  readonly text: TextCodec;
  readonly gpu: GpuContext;
  /** The weight format the model runs in. */
  readonly weights: WeightFormatOptions;
  private readonly model: GpuLlama;
  private busy = false;

  private constructor(gpu: GpuContext, model: GpuLlama, text: TextCodec, weights: WeightFormatOptions) {
    this.gpu = gpu;
    this.model = model;
    this.spec = model.spec;
    this.text = text;
    this.weights = weights;
  }

  /** Loads a model from a URL folder (Range requests) or any ModelFiles (picked files, a Node directory). */
  static async load(source: string | ModelFiles, options: LoadOptions = {}): Promise<TriEngine> {
    const files = typeof source === 'string' ? new HttpModelFiles(source) : source;
    const opened = await openModel(files, options.signal);
    const gpu = await GpuContext.create(options.gpu);
    const weights = options.weights ?? defaultWeightFormat(opened.spec);
    try {
      const model = await GpuLlama.load(gpu, opened.spec, opened.checkpoint, {
        contextLength: options.contextLength,
        weights,
        signal: options.signal,
        onProgress: (loadedBytes, totalBytes) => options.onProgress?.({ loadedBytes, totalBytes }),
      });
      return new TriEngine(gpu, model, opened.text, weights);
    } catch (error) {
      gpu.destroy();
      throw error;
    }
  }

  /** GPU dispatches recorded for the last decoded token (a measure of fusion; 6 per layer + 3). */
  get dispatchesPerDecodedToken(): number {
    return this.model.lastDispatchCount;
  }

  get contextLength(): number {
    return this.model.contextLength;
  }

  /** Token ids for a prompt: plain text is encoded as the tokenizer says; messages go through the chat template. */
  promptIds(prompt: Prompt): number[] {
    if (typeof prompt === 'string') return this.text.encode(prompt);
    if ('tokenIds' in prompt) return [...prompt.tokenIds];
    return this.text.applyChatTemplate(prompt);
  }

  /**
   * Streams a continuation: yields text deltas as tokens are decoded and returns the whole result.
   * Errors (prompt too long, device lost) are thrown before or between tokens; the engine stays usable.
   */
  async *generate(prompt: Prompt, options: GenerateOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    if (this.busy) throw new TriWebGPUError('ENGINE_BUSY', 'a generation is already running on this engine; await it or abort it first');
    const promptIds = this.promptIds(prompt);
    if (promptIds.length === 0) throw new RangeError('the prompt is empty: give at least one token');
    if (promptIds.length >= this.contextLength) throw new ContextOverflowError(promptIds.length, this.contextLength);
    const maxNewTokens = Math.min(options.maxNewTokens ?? 256, this.contextLength - promptIds.length);
    const sampling = samplingConfig(options);
    const stopIds = new Set(this.spec.eosTokenIds);
    const decoder = new StreamDecoder(this.text);
    const tokenIds: number[] = [];
    let text = '';
    let finishReason: FinishReason = 'length';
    this.busy = true;
    const start = performance.now();
    let firstTokenAt = start;
    try {
      this.model.reset();
      // The RNG step is the index of the token being drawn: a seed reproduces the whole text.
      let next = await this.model.forwardSample(promptIds, sampling, 0);
      firstTokenAt = performance.now();
      for (;;) {
        if (options.signal?.aborted) {
          finishReason = 'abort';
          break;
        }
        tokenIds.push(next);
        if (stopIds.has(next)) {
          finishReason = 'stop';
          break;
        }
        const delta = decoder.push(next);
        text += delta;
        yield { text: delta, tokenId: next };
        if (tokenIds.length >= maxNewTokens) break;
        next = await this.model.forwardSample([next], sampling, tokenIds.length);
      }
      const rest = decoder.flush();
      if (rest) {
        text += rest;
        yield { text: rest, tokenId: tokenIds.at(-1)! };
      }
    } finally {
      this.busy = false;
    }
    const decodeSeconds = (performance.now() - firstTokenAt) / 1000;
    return {
      text,
      tokenIds,
      finishReason,
      usage: { promptTokens: promptIds.length, completionTokens: tokenIds.length },
      timings: {
        prefillSeconds: (firstTokenAt - start) / 1000,
        decodeTokensPerSecond: tokenIds.length > 1 && decodeSeconds > 0 ? (tokenIds.length - 1) / decodeSeconds : 0,
      },
    };
  }

  /** Runs generate() to the end and returns the result. */
  async complete(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerationResult> {
    const stream = this.generate(prompt, options);
    for (;;) {
      const step = await stream.next();
      if (step.done) return step.value;
    }
  }

  dispose(): void {
    this.model.destroy();
    this.gpu.destroy();
  }
}
