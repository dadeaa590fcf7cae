// Where the page's model lives: one Web Worker per loaded model. Loading another model terminates the
// old worker first, and its GPU device with it, before the next model allocates (it may need all of the
// memory). A lost GPU device or a crashed worker leaves the page usable; "Reload model" starts a fresh
// worker.
import type { LoadPlan, LoadProgress } from '../../src/index.ts';
import { WorkerEngine } from '../../src/worker/client.ts';
import type { WorkerLoadOptions } from '../../src/worker/protocol.ts';

/** A model the user can pick: a folder URL, or the files of a local folder. */
export type ModelSource =
  | { kind: 'url'; url: string; name: string }
  | { kind: 'files'; files: File[]; name: string };

export const TRI_7B_REPO = 'trillionlabs/Tri-7B';

/** The model shipped with the app, beside the page (works under any sub-path). */
export function bundledModel(): ModelSource {
  return { kind: 'url', url: new URL('models/tri-tiny-chat/', document.baseURI).href, name: 'tri-tiny-chat' };
}

export const BUNDLED_VISION_NAME = 'tri-tiny-llava';

/** The small vision model shipped with the app (it names coloured shapes in pictures). */
export function bundledVisionModel(): ModelSource {
  return { kind: 'url', url: new URL(`models/${BUNDLED_VISION_NAME}/`, document.baseURI).href, name: BUNDLED_VISION_NAME };
}

/**
 * A Hugging Face repo id (`owner/name`, optionally `@revision`) or a folder URL, as a model source.
 * Repo ids resolve to the hub's file URLs (`/resolve/<revision>/`), which answer Range requests.
 */
export function modelFromAddress(address: string): ModelSource | undefined {
  const text = address.trim();
  const repo = /^([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/.exec(text);
  if (repo) return { kind: 'url', url: `https://huggingface.co/${repo[1]}/resolve/${repo[2] ?? 'main'}/`, name: repo[1]! };
  try {
    const url = new URL(text, document.baseURI);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    const folder = url.href.endsWith('/') ? url.href : `${url.href}/`;
    return { kind: 'url', url: folder, name: url.pathname.split('/').filter(Boolean).at(-1) ?? url.host };
  } catch {
    return undefined;
  }
}

/** The files of a picked or dropped folder that sit at its top level (a model folder's files). */
export function topLevelFiles(files: Iterable<File>): File[] {
  return [...files].filter((file) => {
    const path = file.webkitRelativePath || file.name;
    return path.split('/').length <= 2 && !file.name.startsWith('.');
  });
}

export class EngineHost {
  engine: WorkerEngine | undefined;
  source: ModelSource | undefined;
  private worker: Worker | undefined;

  private static spawn(): Worker {
    return new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'tri-webgpu engine' });
  }

  /** What loading `source` takes, checked in a short-lived worker (the loaded model keeps running). */
  async plan(source: ModelSource, options: WorkerLoadOptions, signal?: AbortSignal): Promise<LoadPlan> {
    const worker = EngineHost.spawn();
    try {
      return await WorkerEngine.plan(worker, source.kind === 'url' ? source.url : source.files, { ...options, ...(signal ? { signal } : {}) });
    } finally {
      worker.terminate();
    }
  }

  /** Unloads the current model, then loads `source` in a new worker. */
  async load(source: ModelSource, options: WorkerLoadOptions, onProgress: (progress: LoadProgress) => void, signal: AbortSignal): Promise<WorkerEngine> {
    this.unload();
    const worker = (this.worker = EngineHost.spawn());
    try {
      const engine = await WorkerEngine.load(worker, source.kind === 'url' ? source.url : source.files, { ...options, onProgress, signal });
      this.engine = engine;
      this.source = source;
      return engine;
    } catch (error) {
      worker.terminate();
      if (this.worker === worker) this.worker = undefined;
      throw error;
    }
  }

  unload(): void {
    this.engine?.terminate();
    this.worker?.terminate();
    this.engine = undefined;
    this.worker = undefined;
  }
}
