// The worker side: `serveEngine(self)` in a module worker runs a TriEngine there, so model loading and
// the GPU loop never block the page's main thread. WebGPU is available in dedicated workers.
//   // engine.worker.ts
//   import { serveEngine } from 'tri-webgpu/worker';
//   serveEngine(self);
import { TriWebGPUError } from '../errors.ts';
import { TriEngine } from '../runtime/engine.ts';
import type { GenerationChunk, GenerationResult } from '../runtime/engine.ts';
import type { FromWorker, SerializedError, ToWorker } from './protocol.ts';

interface MessageEndpoint {
  postMessage(message: FromWorker): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<ToWorker>) => void): void;
}

export function serializeError(error: unknown): SerializedError {
  const value = error instanceof Error ? error : new Error(String(error));
  return { name: value.name, code: value instanceof TriWebGPUError ? value.code : undefined, message: value.message };
}

export function serveEngine(endpoint: MessageEndpoint): void {
  let engine: TriEngine | undefined;
  const running = new Map<number, AbortController>();

  async function stream(id: number, generation: AsyncGenerator<GenerationChunk, GenerationResult>): Promise<void> {
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

  endpoint.addEventListener('message', (event) => {
    const message = event.data;
    switch (message.type) {
      case 'load':
        TriEngine.load(message.url, {
          ...message.options,
          onProgress: ({ loadedBytes, totalBytes }) => endpoint.postMessage({ type: 'progress', loadedBytes, totalBytes }),
        }).then(
          (loaded) => {
            engine = loaded;
            endpoint.postMessage({ type: 'loaded', weights: loaded.weights, contextLength: loaded.contextLength, hasChatTemplate: loaded.text.hasChatTemplate });
          },
          (error: unknown) => endpoint.postMessage({ type: 'loadError', error: serializeError(error) }),
        );
        return;
      case 'generate':
      case 'generatePacked': {
        if (!engine) {
          endpoint.postMessage({ type: 'error', id: message.id, error: { name: 'TriWebGPUError', code: 'NOT_LOADED', message: 'no model is loaded in this worker' } });
          return;
        }
        const controller = new AbortController();
        running.set(message.id, controller);
        const options = { ...message.options, signal: controller.signal };
        void stream(message.id, message.type === 'generate'
          ? engine.generate(message.prompt, options)
          : engine.generatePacked(message.documents, message.policy, options));
        return;
      }
      case 'abort':
        running.get(message.id)?.abort();
        return;
      case 'dispose':
        for (const controller of running.values()) controller.abort();
        engine?.dispose();
        engine = undefined;
        return;
    }
  });
}
