// The page side: WorkerEngine talks to serveEngine in a Web Worker and offers the same calls as TriEngine
// (generate, generatePacked, complete, chat.completions), so an app can move the model off the main
// thread by changing one line. Errors come back as the same typed classes.
import {
  ContextOverflowError, DeviceLostError, EngineDisposedError, GpuLimitError, GpuOutOfMemoryError, InvalidRequestError, KvCacheFullError,
  ModelFileMissingError, ModelFileReadError, ModelIntegrityError, SafetensorsFormatError, StorageQuotaError, TokenizerError, TriWebGPUError, UnsupportedModelError,
  WebGPUUnavailableError,
} from '../errors.ts';
import type { AttentionPolicy } from '../kv/documents.ts';
import type { WeightFormatOptions } from '../model/quant.ts';
import { ChatCompletions, Completions } from '../runtime/openai.ts';
import type { ContinuationScore, GenerateOptions, Generation, GenerationChunk, GenerationResult, LoadProgress, PackedDocument, Prompt, ScoreOptions } from '../runtime/engine.ts';
import { AsyncQueue, GenerationStream, streamResult } from '../runtime/stream.ts';
import { resolveFolderUrl } from '../model/byte-source.ts';
import type { LoadPlan } from '../runtime/plan.ts';
import type { SamplingOptions } from '../runtime/sampling.ts';
import type { FromWorker, SerializedError, ToWorker, WorkerLoadOptions, WorkerModelSource } from './protocol.ts';

/** Error classes by code (codes, unlike class names, survive minification on both sides). */
const ERROR_CLASSES: Record<string, { prototype: TriWebGPUError }> = {
  CONTEXT_OVERFLOW: ContextOverflowError, DEVICE_LOST: DeviceLostError, ENGINE_DISPOSED: EngineDisposedError,
  GPU_LIMIT: GpuLimitError, GPU_OUT_OF_MEMORY: GpuOutOfMemoryError, INVALID_REQUEST: InvalidRequestError,
  KV_CACHE_FULL: KvCacheFullError, MODEL_FILE_MISSING: ModelFileMissingError, MODEL_FILE_READ: ModelFileReadError, MODEL_INTEGRITY: ModelIntegrityError,
  SAFETENSORS_FORMAT: SafetensorsFormatError, STORAGE_QUOTA: StorageQuotaError, TOKENIZER: TokenizerError, UNSUPPORTED_MODEL: UnsupportedModelError,
  WEBGPU_UNAVAILABLE: WebGPUUnavailableError,
};

/** Rebuilds a worker's error as the same class (prototype, name and code), with its message and fields. */
export function deserializeError({ name, code, message, fields }: SerializedError): Error {
  if (name === 'AbortError') return new DOMException(message, 'AbortError');
  if (code === undefined) {
    const error = new Error(message);
    error.name = name;
    return error;
  }
  const type = ERROR_CLASSES[code];
  const error = Object.create((type ?? TriWebGPUError).prototype) as TriWebGPUError;
  Object.assign(error, { name, code, message, stack: `${name}: ${message}` }, fields);
  return error;
}

/** Load requests are numbered per page, so a worker's answer reaches the load that asked. */
let nextLoadId = 1;

export class WorkerEngine {
  readonly weights: WeightFormatOptions;
  readonly contextLength: number;
  readonly hasChatTemplate: boolean;
  /** A vision (llava) model: chat messages may hold image parts (Blobs, ImageBitmaps, ImageData, decoded pixels or URLs cross to the worker). */
  readonly acceptsImages: boolean;
  /** The sampling the model's generation_config.json asks for (see TriEngine.generationDefaults). */
  readonly generationDefaults: SamplingOptions;
  /**
   * Resolves when the worker reports that the model's GPU device was lost (a driver reset, a GPU process
   * crash): the engine is unusable from then on (calls throw this error); load the model again.
   */
  readonly lost: Promise<DeviceLostError>;
  /** OpenAI-style: `engine.chat.completions.create({ messages, stream: true })`. */
  readonly chat: { readonly completions: ChatCompletions };
  /** OpenAI-style raw-prompt completions. */
  readonly completions: Completions;
  private readonly worker: Worker;
  private readonly pending = new Map<number, AsyncQueue<GenerationChunk, GenerationResult>>();
  private readonly scoring = new Map<number, { resolve: (scores: ContinuationScore[]) => void; reject: (error: unknown) => void }>();
  private nextId = 1;
  /** Set once the engine can no longer run anything (disposed, terminated, crashed): later calls throw it. */
  private closedWith: Error | undefined;

  private constructor(worker: Worker, loaded: Extract<FromWorker, { type: 'loaded' }>, modelName: string) {
    this.worker = worker;
    this.weights = loaded.weights;
    this.contextLength = loaded.contextLength;
    this.hasChatTemplate = loaded.hasChatTemplate;
    this.acceptsImages = loaded.acceptsImages;
    this.generationDefaults = loaded.generationDefaults;
    this.chat = { completions: new ChatCompletions(this, modelName) };
    this.completions = new Completions(this, modelName);
    let reportLost: (error: DeviceLostError) => void = () => {};
    this.lost = new Promise((resolve) => (reportLost = resolve));
    worker.addEventListener('message', (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type !== 'deviceLost') return this.receive(message);
      const error = new DeviceLostError(message.message);
      this.fail(error);
      reportLost(error);
    });
    // A worker that crashes (or whose module fails) ends every pending call with a typed error.
    worker.addEventListener('error', (event) => this.fail(new TriWebGPUError('WORKER', `the engine worker failed: ${event.message || 'it stopped'}`)));
    worker.addEventListener('messageerror', () => this.fail(new TriWebGPUError('WORKER', 'a message from the engine worker could not be read')));
  }

  /**
   * Stops the worker at once (Worker.terminate) and ends every pending call with a typed error. Prefer
   * this to calling worker.terminate() yourself, which a page cannot observe: calls would wait forever.
   */
  terminate(): void {
    this.worker.terminate();
    this.fail(new EngineDisposedError('the engine worker was terminated'));
  }

  private fail(error: Error): void {
    this.closedWith ??= error;
    for (const queue of this.pending.values()) queue.fail(error);
    this.pending.clear();
    for (const scoring of [...this.scoring.values()]) scoring.reject(error);
  }

  /**
   * Loads a model in `worker`, which must call serveEngine(self): a folder URL (relative ones against the
   * page) or the files of a folder the user picked (`<input webkitdirectory>`, drag and drop; read in
   * place, never uploaded). `signal` aborts the load: the promise rejects at once with the signal's
   * reason and the worker stops downloading and frees what it allocated.
   */
  static async load(worker: Worker, source: string | Iterable<File>, options: WorkerLoadOptions & { onProgress?: (progress: LoadProgress) => void; signal?: AbortSignal } = {}): Promise<WorkerEngine> {
    const { onProgress, signal, ...loadOptions } = options;
    const workerSource = toWorkerSource(source);
    const modelName = typeof workerSource === 'string' ? workerSource : 'local model';
    return WorkerEngine.request(worker, { type: 'load', source: workerSource, options: loadOptions }, signal, (message, resolve) => {
      if (message.type === 'progress') {
        const { phase, converting, loadedBytes, totalBytes, bytesPerSecond, etaSeconds } = message;
        onProgress?.({ phase, converting, loadedBytes, totalBytes, bytesPerSecond, etaSeconds });
      }
      if (message.type === 'loaded') resolve(new WorkerEngine(worker, message, modelName));
    });
  }

  /**
   * TriEngine.plan in the worker: what loading `source` will take (download, cached bytes, GPU memory
   * against this device, storage quota) and whether it fits, reading only config, tokenizer and headers.
   */
  static async plan(worker: Worker, source: string | Iterable<File>, options: WorkerLoadOptions & { signal?: AbortSignal } = {}): Promise<LoadPlan> {
    const { signal, ...planOptions } = options;
    return WorkerEngine.request(worker, { type: 'plan', source: toWorkerSource(source), options: planOptions }, signal, (message, resolve) => {
      if (message.type === 'planned') resolve(message.plan);
    });
  }

  /** Sends a numbered load or plan request and settles on its answer, a loadError, a crash or the signal. */
  private static request<T>(
    worker: Worker, request: { type: 'load' | 'plan'; source: WorkerModelSource; options: WorkerLoadOptions },
    signal: AbortSignal | undefined, answer: (message: FromWorker & { loadId: number }, resolve: (value: T) => void) => void,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const loadId = nextLoadId++;
      const cleanup = () => {
        worker.removeEventListener('message', listener);
        worker.removeEventListener('error', failed);
        signal?.removeEventListener('abort', aborted);
      };
      const listener = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (!('loadId' in message) || message.loadId !== loadId) return;
        if (message.type === 'loadError') {
          cleanup();
          reject(deserializeError(message.error));
          return;
        }
        answer(message, (value) => {
          cleanup();
          resolve(value);
        });
      };
      const failed = (event: ErrorEvent) => {
        cleanup();
        reject(new TriWebGPUError('WORKER', `the engine worker failed to start: ${event.message}`));
      };
      const aborted = () => {
        cleanup();
        worker.postMessage({ type: 'abortLoad', loadId } satisfies ToWorker);
        reject(signal!.reason);
      };
      worker.addEventListener('message', listener);
      worker.addEventListener('error', failed);
      signal?.addEventListener('abort', aborted, { once: true });
      worker.postMessage({ ...request, loadId } as ToWorker);
    });
  }

  generate(prompt: Prompt, options: GenerateOptions | null = {}): Generation {
    const { signal, ...rest } = options ?? {};
    return this.run((id) => ({ type: 'generate', id, prompt, options: rest }), signal);
  }

  generatePacked(documents: readonly PackedDocument[], policy: AttentionPolicy, options: GenerateOptions | null = {}): Generation {
    const { signal, ...rest } = options ?? {};
    return this.run((id) => ({ type: 'generatePacked', id, documents: Array.from(documents ?? []), policy, options: rest }), signal);
  }

  complete(prompt: Prompt, options: GenerateOptions | null = {}): Promise<GenerationResult> {
    return streamResult(this.generate(prompt, options));
  }

  /**
   * Frees the model in the worker (the worker itself stays yours to terminate). Generations still running
   * end with EngineDisposedError; later calls throw it.
   */
  dispose(): void {
    if (this.closedWith) return;
    this.closedWith = new EngineDisposedError();
    this.worker.postMessage({ type: 'dispose' } satisfies ToWorker);
  }

  /** TriEngine.score in the worker: each continuation's log-likelihood after the prompt. */
  score(prompt: Prompt, continuations: readonly (string | { tokenIds: readonly number[] })[], options: ScoreOptions = {}): Promise<ContinuationScore[]> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    const { signal, addSpecialTokens } = options;
    return new Promise<ContinuationScore[]>((resolve, reject) => {
      const abort = () => this.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
      const settle = () => {
        signal?.removeEventListener('abort', abort);
        this.scoring.delete(id);
      };
      this.scoring.set(id, { resolve: (scores) => (settle(), resolve(scores)), reject: (error) => (settle(), reject(error)) });
      try {
        this.worker.postMessage({ type: 'score', id, prompt, continuations: [...continuations], ...(addSpecialTokens === undefined ? {} : { addSpecialTokens }) } satisfies ToWorker);
      } catch (error) {
        settle();
        reject(new InvalidRequestError(`the request cannot be sent to the worker (${(error as Error).message}); prompts must be plain data`));
        return;
      }
      signal?.addEventListener('abort', abort);
      if (signal?.aborted) abort();
    });
  }

  private run(message: (id: number) => ToWorker, signal: AbortSignal | undefined): Generation {
    return new GenerationStream(() => {
      if (this.closedWith) throw this.closedWith;
      const id = this.nextId++;
      const queue = new AsyncQueue<GenerationChunk, GenerationResult>();
      this.pending.set(id, queue);
      const abort = () => this.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
      try {
        this.worker.postMessage(message(id));
      } catch (error) {
        this.pending.delete(id);
        throw new InvalidRequestError(`the request cannot be sent to the worker (${(error as Error).message}); prompts and options must be plain data`);
      }
      signal?.addEventListener('abort', abort);
      if (signal?.aborted) abort();
      const events = async function* (pending: Map<number, unknown>): AsyncGenerator<GenerationChunk, GenerationResult> {
        try {
          return yield* queue.stream();
        } finally {
          signal?.removeEventListener('abort', abort);
          pending.delete(id);
        }
      };
      return { events: events(this.pending), close: abort };
    });
  }

  private receive(message: FromWorker): void {
    if (message.type === 'deviceLost') return;
    if (!('id' in message)) return;
    const scoring = this.scoring.get(message.id);
    if (scoring && message.type === 'scored') scoring.resolve(message.scores);
    if (scoring && message.type === 'error') scoring.reject(deserializeError(message.error));
    const queue = this.pending.get(message.id);
    if (message.type === 'chunk') queue?.push(message.chunk);
    if (message.type === 'done') queue?.end(message.result);
    if (message.type === 'error') queue?.fail(deserializeError(message.error));
  }
}

/** A URL resolved against the page, or picked files as an array (FileList and other iterables clone as arrays). */
function toWorkerSource(source: string | Iterable<File>): WorkerModelSource {
  if (typeof source === 'string') return resolveFolderUrl(source);
  if (source === null || typeof source !== 'object' || !(Symbol.iterator in source)) {
    throw new InvalidRequestError('the model source must be a URL string or the files of a model folder');
  }
  return [...source];
}
