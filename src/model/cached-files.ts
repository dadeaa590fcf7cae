// A browser-side cache of downloaded model bytes (the Cache API), so a page reload or a second visit does
// not download the checkpoint again, and a download cut off by closing the tab resumes where it stopped:
// every range read (at most a 32 MiB chunk of rows, or a small file) is stored under its own key. Keys
// carry the file's size and ETag, so a changed file on the server is fetched anew. Each entry also carries
// the SHA-256 of its bytes, checked on every hit: a corrupted entry (disk, extension, a partial write) is
// dropped and downloaded again instead of loading as garbage on every visit.
import type { ByteSource, ModelFiles } from './byte-source.ts';
import type { SafetensorsCheckpoint } from './safetensors.ts';
import { OpfsByteSource, opfsModelDirectory, opfsModels, removeOpfsModels } from './opfs-store.ts';

export const MODEL_CACHE_NAME = 'tri-webgpu-model-bytes-v2';
const OLD_CACHE_NAME = 'tri-webgpu-model-bytes-v1';
const DIGEST_HEADER = 'x-tri-webgpu-sha256';
const BYTES_HEADER = 'x-tri-webgpu-bytes';
/** Files of an artifact's weights (FORMAT.md): stored in OPFS, not the Cache API. */
const ARTIFACT_SHARD = /^weights-\d+\.bin$/;

/** Wraps ModelFiles (normally HttpModelFiles) with the Cache API; reads that miss go to the wrapped files. */
export class CachedModelFiles implements ModelFiles {
  readonly location: string;
  private readonly inner: ModelFiles;
  private readonly cache: Cache;
  /** Reads served from the cache or OPFS, fetched (then stored), and cached entries found corrupt (then fetched), since creation. */
  readonly stats = { hits: 0, misses: 0, storeFailures: 0, corrupt: 0 };

  private constructor(inner: ModelFiles, cache: Cache) {
    this.inner = inner;
    this.cache = cache;
    this.location = inner.location;
  }

  /** The cached view of `inner`, or `inner` itself where the Cache API is missing (Node, insecure pages). */
  static async open(inner: ModelFiles): Promise<ModelFiles> {
    if (typeof caches === 'undefined') return inner;
    try {
      void caches.delete(OLD_CACHE_NAME); // entries of version 1 carry no digests: never read again
      return new CachedModelFiles(inner, await caches.open(MODEL_CACHE_NAME));
    } catch {
      return inner; // storage disabled (private browsing, policy): download as before
    }
  }

  /** Bytes of this model folder already stored (Cache API and OPFS, any version of its files). */
  async cachedBytes(): Promise<number> {
    const inCache = (await cachedModels(this.cache)).find((model) => model.location === cacheBase(this.location))?.bytes ?? 0;
    const inOpfs = (await opfsModels()).find((model) => model.location === this.location)?.bytes ?? 0;
    return inCache + inOpfs;
  }

  /**
   * Drops the cached ranges of a checkpoint's tensor data (once its conversion is kept); the ranges of
   * its headers stay, so the next load can check the kept copy against them without the network.
   */
  async forgetTensorData(checkpoint: SafetensorsCheckpoint): Promise<void> {
    const dataStart = new Map<string, number>();
    for (const { source, byteOffset } of checkpoint.tensors.values()) dataStart.set(source.name, Math.min(dataStart.get(source.name) ?? Infinity, byteOffset));
    const base = new URL(cacheBase(this.location));
    for (const request of await this.cache.keys()) {
      const url = new URL(request.url);
      if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) continue;
      const start = dataStart.get(decodeURIComponent(url.pathname.slice(base.pathname.length)));
      const offset = Number(/^(\d+)-/.exec(url.searchParams.get('bytes') ?? '')?.[1]);
      if (start !== undefined && offset >= start) await this.cache.delete(request);
    }
  }

  async open(fileName: string, signal?: AbortSignal): Promise<ByteSource> {
    const source = await this.inner.open(fileName, signal);
    // Artifact shards (read whole, in order) go to OPFS where the browser has it; the rest to the Cache API.
    if (ARTIFACT_SHARD.test(fileName)) {
      const directory = await opfsModelDirectory(this.location, true);
      if (directory) return OpfsByteSource.open(source, directory, this.stats);
    }
    const version = `${source.size}-${source.version ?? 'unversioned'}`;
    const prefix = new URL(`${encodeURIComponent(fileName)}?version=${encodeURIComponent(version)}`, cacheBase(this.location)).href;
    return new CachedByteSource(source, this.cache, prefix, this.stats);
  }
}

class CachedByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly source: ByteSource;
  private readonly cache: Cache;
  private readonly keyPrefix: string;
  private readonly stats: CachedModelFiles['stats'];

  constructor(source: ByteSource, cache: Cache, keyPrefix: string, stats: CachedModelFiles['stats']) {
    this.name = source.name;
    this.size = source.size;
    this.source = source;
    this.cache = cache;
    this.keyPrefix = keyPrefix;
    this.stats = stats;
  }

  async invalidate(): Promise<void> {
    for (const key of await this.cache.keys()) if (key.url.startsWith(this.keyPrefix)) await this.cache.delete(key);
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    const key = `${this.keyPrefix}&bytes=${offset}-${length}`;
    const hit = await this.cache.match(key);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      const intact = bytes.length === length && hit.headers.get(DIGEST_HEADER) === (await sha256(bytes));
      signal?.throwIfAborted(); // the Cache API takes no signal: a load aborted while reading it stops here
      if (intact) {
        this.stats.hits++;
        return bytes;
      }
      this.stats.corrupt++;
      await this.cache.delete(key);
    }
    const bytes = await this.source.read(offset, length, signal);
    this.stats.misses++;
    try {
      await this.cache.put(key, new Response(bytes.slice(), { headers: { [DIGEST_HEADER]: await sha256(bytes), [BYTES_HEADER]: String(bytes.byteLength) } }));
    } catch {
      this.stats.storeFailures++; // over quota: keep going without caching this range
    }
    return bytes;
  }
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** Cache API keys must be http(s) URLs: model folders elsewhere (blob:, file:) get a stand-in origin. */
function cacheBase(location: string): string {
  const base = location.endsWith('/') ? location : `${location}/`;
  return /^https?:/.test(base) ? base : `https://tri-webgpu.invalid/${encodeURIComponent(base)}/`;
}

/** A model folder with bytes in the cache. */
export interface CachedModel {
  /** The folder's URL (as given to TriEngine.load, resolved). */
  location: string;
  bytes: number;
  /** Cached ranges. */
  entries: number;
}

async function cachedModels(cache: Cache): Promise<CachedModel[]> {
  const models = new Map<string, CachedModel>();
  for (const request of await cache.keys()) {
    const location = request.url.slice(0, request.url.lastIndexOf('/', request.url.indexOf('?')) + 1);
    const response = await cache.match(request);
    const bytes = Number(response?.headers.get(BYTES_HEADER) ?? 0);
    const model = models.get(location) ?? { location, bytes: 0, entries: 0 };
    model.bytes += bytes;
    model.entries++;
    models.set(location, model);
  }
  return [...models.values()];
}

/** The model folders in the browser's cache, with their sizes (empty where the Cache API is missing). */
export async function listCachedModels(): Promise<CachedModel[]> {
  const models = typeof caches === 'undefined' ? [] : await cachedModels(await caches.open(MODEL_CACHE_NAME));
  for (const stored of await opfsModels()) {
    const location = cacheBase(stored.location);
    const model = models.find((m) => m.location === location);
    if (model) {
      model.bytes += stored.bytes;
      model.entries += stored.files;
    } else {
      models.push({ location, bytes: stored.bytes, entries: stored.files });
    }
  }
  return models;
}

/** Deletes one cached model folder (`location` as listCachedModels gives it, or the URL it was loaded from). */
export async function deleteCachedModel(location: string): Promise<number> {
  const base = cacheBase(new URL(location, (globalThis as { location?: { href: string } }).location?.href).href);
  let deleted = (await opfsModels()).find((model) => cacheBase(model.location) === base)?.files ?? 0;
  await removeOpfsModels(base);
  if (typeof caches === 'undefined') return deleted;
  const cache = await caches.open(MODEL_CACHE_NAME);
  for (const request of await cache.keys()) {
    if (request.url.startsWith(base) && !request.url.slice(base.length).includes('/')) {
      await cache.delete(request);
      deleted++;
    }
  }
  return deleted;
}

/** Storage the origin uses and may use (navigator.storage.estimate()), where the browser says. */
export async function storageEstimate(): Promise<{ usage: number; quota: number } | undefined> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (!storage?.estimate) return undefined;
  const { usage, quota } = await storage.estimate();
  return usage === undefined || quota === undefined ? undefined : { usage, quota };
}

/** Forgets every cached model byte (e.g. from a "clear downloaded models" button). */
export async function clearModelCache(): Promise<boolean> {
  await removeOpfsModels();
  if (typeof caches === 'undefined') return false;
  await caches.delete(OLD_CACHE_NAME);
  return caches.delete(MODEL_CACHE_NAME);
}
