// The page side: WorkerEngine talks to serveEngine in a Web Worker and offers the same calls as TriEngine
// (generate, generatePacked, complete, chat.completions), so an app can move the model off the main
// thread by changing one line. Errors come back as the same typed classes.
import {
  ContextOverflowError, DeviceLostError, GpuLimitError, GpuOutOfMemoryError, InvalidRequestError, ModelFileMissingError,
  ModelFileReadError, SafetensorsFormatError, TokenizerError, TriWebGPUError, UnsupportedModelError, WebGPUUnavailableError,
} from '../errors.ts';
import type { AttentionPolicy } from '../kv/documents.ts';
import { KvCacheFullError } from '../kv/paged-cache.ts';
import type { WeightFormatOptions } from '../model/quant.ts';
import { ChatCompletions } from '../runtime/chat-completions.ts';
import type { GenerateOptions, GenerationChunk, GenerationResult, PackedDocument, Prompt } from '../runtime/engine.ts';
import { AsyncQueue, streamResult } from '../runtime/stream.ts';
import type { FromWorker, SerializedError, ToWorker, WorkerLoadOptions } from './protocol.ts';

const ERROR_CLASSES: Record<string, new (message: string) => TriWebGPUError> = Object.fromEntries(
  [ContextOverflowError, DeviceLostError, GpuLimitError, GpuOutOfMemoryError, InvalidRequestError, ModelFileMissingError, ModelFileReadError,
    SafetensorsFormatError, TokenizerError, UnsupportedModelError, WebGPUUnavailableError, KvCacheFullError].map((type) => [type.name, type as never]),
);

/** Rebuilds a worker's error as the same class (prototype and code), with its message. */
export function deserializeError({ name, code, message }: SerializedError): Error {
  const type = ERROR_CLASSES[name];
  if (type) {
    const error = Object.create(type.prototype) as TriWebGPUError;
    Object.assign(error, { name, code, message, stack: `${name}: ${message}` });
    return error;
  }
  if (code !== undefined) return new TriWebGPUError(code, message);
  const error = new Error(message);
  error.name = name;
  return error;
}

export class WorkerEngine {
  readonly weights: WeightFormatOptions;
  readonly contextLength: number;
  readonly hasChatTemplate: boolean;
  /** OpenAI-style: `engine.chat.completions.create({ messages, stream: true })`. */
  readonly chat: { readonly completions: ChatCompletions };
  private readonly worker: Worker;
  private readonly pending = new Map<number, AsyncQueue<GenerationChunk, GenerationResult>>();
  private nextId = 1;

  private constructor(worker: Worker, loaded: Extract<FromWorker, { type: 'loaded' }>, modelName: string) {
    this.worker = worker;
    this.weights = loaded.weights;
    this.contextLength = loaded.contextLength;
    this.hasChatTemplate = loaded.hasChatTemplate;
    this.chat = { completions: new ChatCompletions(this, modelName) };
    worker.addEventListener('message', (event: MessageEvent<FromWorker>) => this.receive(event.data));
  }

  /** Loads a model folder (URL) in `worker`, which must call serveEngine(self). */
  static load(worker: Worker, url: string, options: WorkerLoadOptions & { onProgress?: (progress: { loadedBytes: number; totalBytes: number }) => void } = {}): Promise<WorkerEngine> {
    const { onProgress, ...loadOptions } = options;
    return new Promise((resolve, reject) => {
      const listener = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.type === 'progress') onProgress?.(message);
        if (message.type === 'loaded' || message.type === 'loadError') worker.removeEventListener('message', listener);
        if (message.type === 'loaded') resolve(new WorkerEngine(worker, message, url));
        if (message.type === 'loadError') reject(deserializeError(message.error));
      };
      worker.addEventListener('message', listener);
      worker.addEventListener('error', (event) => reject(new TriWebGPUError('WORKER', `the engine worker failed to start: ${event.message}`)), { once: true });
      worker.postMessage({ type: 'load', url: new URL(url, globalThis.location?.href).href, options: loadOptions } satisfies ToWorker);
    });
  }

  generate(prompt: Prompt, options: GenerateOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    const { signal, ...rest } = options;
    return this.run((id) => ({ type: 'generate', id, prompt, options: rest }), signal);
  }

  generatePacked(documents: readonly PackedDocument[], policy: AttentionPolicy, options: GenerateOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    const { signal, ...rest } = options;
    return this.run((id) => ({ type: 'generatePacked', id, documents: [...documents], policy, options: rest }), signal);
  }

  complete(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerationResult> {
    return streamResult(this.generate(prompt, options));
  }

  /** Frees the model in the worker (the worker itself stays yours to terminate). */
  dispose(): void {
    this.worker.postMessage({ type: 'dispose' } satisfies ToWorker);
  }

  private async *run(message: (id: number) => ToWorker, signal: AbortSignal | undefined): AsyncGenerator<GenerationChunk, GenerationResult> {
    const id = this.nextId++;
    const queue = new AsyncQueue<GenerationChunk, GenerationResult>();
    this.pending.set(id, queue);
    const abort = () => this.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
    signal?.addEventListener('abort', abort);
    this.worker.postMessage(message(id));
    if (signal?.aborted) abort();
    try {
      return yield* queue.stream();
    } finally {
      signal?.removeEventListener('abort', abort);
      if (!queue.ended) abort(); // the consumer stopped early
      this.pending.delete(id);
    }
  }

  private receive(message: FromWorker): void {
    if (!('id' in message)) return;
    const queue = this.pending.get(message.id);
    if (message.type === 'chunk') queue?.push(message.chunk);
    if (message.type === 'done') queue?.end(message.result);
    if (message.type === 'error') queue?.fail(deserializeError(message.error));
  }
}
