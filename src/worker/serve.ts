// The worker side: `serveEngine(self)` in a module worker runs a TriEngine there, so model loading and
// the GPU loop never block the page's main thread. WebGPU is available in dedicated workers.
//   // engine.worker.ts
//   import { serveEngine } from 'tri-webgpu/worker';
//   serveEngine(self);
import { EngineDisposedError, TriWebGPUError } from '../errors.ts';
import { BlobModelFiles } from '../model/byte-source.ts';
import { TriEngine } from '../runtime/engine.ts';
import type { GenerationChunk, GenerationResult } from '../runtime/engine.ts';
import type { FromWorker, SerializedError, ToWorker, WorkerModelSource } from './protocol.ts';

interface MessageEndpoint {
  postMessage(message: FromWorker): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<ToWorker>) => void): void;
}

export function serializeError(error: unknown): SerializedError {
  const value = error instanceof Error || error instanceof DOMException ? error : new Error(String(error));
  if (!(value instanceof TriWebGPUError)) return { name: value.name, code: undefined, message: value.message };
  const { name, code, message, ...fields } = value as TriWebGPUError & Record<string, unknown>;
  return { name, code, message, fields: structuredCloneable(fields) };
}

/** The fields that can cross postMessage (strings, numbers, booleans). */
function structuredCloneable(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => ['string', 'number', 'boolean'].includes(typeof value)));
}

/** A URL as it is; picked files as a folder of their names (a folder picker gives each a relative path). */
function modelSource(source: WorkerModelSource): string | BlobModelFiles {
  return typeof source === 'string' ? source : new BlobModelFiles(source, 'the selected folder');
}

export function serveEngine(endpoint: MessageEndpoint): void {
  let engine: TriEngine | undefined;
  /** Loads in progress, by id (a load aborted on the page may still be winding down when the next starts). */
  const loading = new Map<number, AbortController>();
  const running = new Map<number, AbortController>();

  async function stream(id: number, generation: AsyncIterator<GenerationChunk, GenerationResult>): Promise<void> {
    try {
      for (;;) {
        const step = await generation.next();
        if (step.done) {
          endpoint.postMessage({ type: 'done', id, result: step.value });
          return;
        }
        endpoint.postMessage({ type: 'chunk', id, chunk: step.value });
      }
    } catch (error) {
      endpoint.postMessage({ type: 'error', id, error: serializeError(error) });
    } finally {
      running.delete(id);
    }
  }

  /** A request's abort signal (an 'abort' message fires it), or undefined after answering that no model is loaded. */
  function startRequest(id: number): AbortSignal | undefined {
    if (!engine) {
      endpoint.postMessage({ type: 'error', id, error: serializeError(new EngineDisposedError('no model is loaded in this worker')) });
      return undefined;
    }
    const controller = new AbortController();
    running.set(id, controller);
    return controller.signal;
  }

  endpoint.addEventListener('message', (event) => {
    const message = event.data;
    switch (message.type) {
      case 'load': {
        const { loadId } = message;
        const controller = new AbortController();
        loading.set(loadId, controller);
        TriEngine.load(modelSource(message.source), {
          ...message.options,
          signal: controller.signal,
          onProgress: (progress) => endpoint.postMessage({ type: 'progress', loadId, ...progress }),
        }).then(
          (loaded) => {
            loading.delete(loadId);
            engine?.dispose();
            engine = loaded;
            void loaded.gpu.lost.then(({ reason, message: why }) => {
              if (reason !== 'destroyed' && engine === loaded) endpoint.postMessage({ type: 'deviceLost', message: `the GPU device was lost (${reason}: ${why}); reload the model` });
            });
            endpoint.postMessage({
              type: 'loaded', loadId, weights: loaded.weights, contextLength: loaded.contextLength,
              hasChatTemplate: loaded.text.hasChatTemplate, acceptsImages: loaded.vision !== undefined, generationDefaults: loaded.generationDefaults,
            });
          },
          (error: unknown) => {
            loading.delete(loadId);
            endpoint.postMessage({ type: 'loadError', loadId, error: serializeError(error) });
          },
        );
        return;
      }
      case 'plan': {
        const { loadId } = message;
        TriEngine.plan(modelSource(message.source), message.options).then(
          (plan) => endpoint.postMessage({ type: 'planned', loadId, plan }),
          (error: unknown) => endpoint.postMessage({ type: 'loadError', loadId, error: serializeError(error) }),
        );
        return;
      }
      case 'abortLoad':
        loading.get(message.loadId)?.abort();
        return;
      case 'generate':
      case 'generatePacked': {
        const signal = startRequest(message.id);
        if (!signal || !engine) return;
        const options = { ...message.options, signal };
        void stream(message.id, message.type === 'generate'
          ? engine.generate(message.prompt, options)
          : engine.generatePacked(message.documents, message.policy, options));
        return;
      }
      case 'score': {
        const signal = startRequest(message.id);
        if (!signal || !engine) return;
        const options = { signal, ...(message.addSpecialTokens === undefined ? {} : { addSpecialTokens: message.addSpecialTokens }) };
        engine.score(message.prompt, message.continuations, options).then(
          (scores) => endpoint.postMessage({ type: 'scored', id: message.id, scores }),
          (error: unknown) => endpoint.postMessage({ type: 'error', id: message.id, error: serializeError(error) }),
        ).finally(() => running.delete(message.id));
        return;
      }
      case 'abort':
        running.get(message.id)?.abort();
        return;
      case 'dispose':
        for (const controller of loading.values()) controller.abort();
        engine?.dispose(); // running generations end with EngineDisposedError
        engine = undefined;
        return;
    }
  });
}
