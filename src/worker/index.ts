// tri-webgpu/worker: run the engine in a Web Worker. In the worker: `serveEngine(self)`; in the page:
// `await WorkerEngine.load(new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' }), url)`.
export { serveEngine } from './serve.ts';
export { WorkerEngine, deserializeError } from './client.ts';
export type { WorkerGenerateOptions, WorkerLoadOptions } from './protocol.ts';
