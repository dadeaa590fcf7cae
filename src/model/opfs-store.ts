// Artifact shards kept in the Origin Private File System (OPFS). The Cache API suits small files and
// ranges, but browsers cap or evict it well below a 4 GB model; OPFS holds whole files, and a shard read
// in order (as ArtifactWeights reads them) is appended to its file as it streams: a load cut off mid-shard
// resumes from the bytes already stored, and a shard that fails its SHA-256 is dropped and fetched again.
// Layout: <root>/tri-webgpu-models/<encoded folder URL>/<file>@<size>-<etag>. In a worker, writes go
// through a sync access handle; elsewhere through a writable stream.
import type { ByteSource } from './byte-source.ts';

const ROOT = 'tri-webgpu-models';

/** Whether this browser has OPFS (not Node, not some private modes). */
export function opfsAvailable(): boolean {
  return typeof (globalThis.navigator as Navigator | undefined)?.storage?.getDirectory === 'function';
}

/** The OPFS directory for a model folder, or undefined where OPFS is missing (Node, some private modes). */
export async function opfsModelDirectory(location: string, create: boolean): Promise<FileSystemDirectoryHandle | undefined> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') return undefined;
  try {
    const root = await (await storage.getDirectory()).getDirectoryHandle(ROOT, { create });
    return await root.getDirectoryHandle(encodeURIComponent(location), { create });
  } catch {
    return undefined; // not there (create: false), or OPFS refused (quota, policy)
  }
}

/** Every model folder in OPFS with the bytes its files hold. */
export async function opfsModels(): Promise<{ location: string; bytes: number; files: number }[]> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') return [];
  let root: FileSystemDirectoryHandle;
  try {
    root = await (await storage.getDirectory()).getDirectoryHandle(ROOT);
  } catch {
    return [];
  }
  const models = [];
  for await (const [name, handle] of entries(root)) {
    if (handle.kind !== 'directory') continue;
    models.push({ location: decodeURIComponent(name), ...(await directorySize(handle as FileSystemDirectoryHandle)) });
  }
  return models;
}

/** Bytes and files under a directory, its subdirectories (kept conversions) included. */
async function directorySize(directory: FileSystemDirectoryHandle): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for await (const [, handle] of entries(directory)) {
    if (handle.kind === 'directory') {
      const inner = await directorySize(handle as FileSystemDirectoryHandle);
      bytes += inner.bytes;
      files += inner.files;
    } else {
      bytes += (await (handle as FileSystemFileHandle).getFile()).size;
      files++;
    }
  }
  return { bytes, files };
}

/** Removes a model folder's files from OPFS (all of OPFS's models when `location` is undefined). */
export async function removeOpfsModels(location?: string): Promise<void> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') return;
  try {
    const top = await storage.getDirectory();
    if (location === undefined) await top.removeEntry(ROOT, { recursive: true });
    else await (await top.getDirectoryHandle(ROOT)).removeEntry(encodeURIComponent(location), { recursive: true });
  } catch {
    // nothing stored
  }
}

export function entries(directory: FileSystemDirectoryHandle): AsyncIterable<[string, FileSystemHandle]> {
  return (directory as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries();
}

/** A file's OPFS name: its version (size and ETag) is part of it, so a changed file on the server is a new file. */
function storedName(source: ByteSource): string {
  return `${source.name}@${source.size}-${(source.version ?? 'unversioned').replace(/[^\w.-]/g, '_')}`;
}

/**
 * A file served from OPFS as far as it is stored, and from `source` beyond, appending what it fetches
 * when a read continues the stored bytes (reads elsewhere are passed through, not stored).
 */
export class OpfsByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  readonly version: string | undefined;
  /** Bytes read from OPFS and fetched from the source, since creation. */
  readonly stats = { storedBytes: 0, fetchedBytes: 0 };
  private readonly source: ByteSource;
  private readonly directory: FileSystemDirectoryHandle;
  private readonly fileName: string;

  /** Reads counted as served from storage (hits) or fetched (misses), e.g. the cache's stats, so a load's progress can say which. */
  private readonly counts: { hits: number; misses: number } | undefined;

  private constructor(source: ByteSource, directory: FileSystemDirectoryHandle, counts?: { hits: number; misses: number }) {
    this.counts = counts;
    this.source = source;
    this.directory = directory;
    this.name = source.name;
    this.size = source.size;
    this.version = source.version;
    this.fileName = storedName(source);
  }

  /** The stored view of `source` in `directory`; stale versions of the same file are removed. */
  static async open(source: ByteSource, directory: FileSystemDirectoryHandle, counts?: { hits: number; misses: number }): Promise<OpfsByteSource> {
    const stored = new OpfsByteSource(source, directory, counts);
    for await (const [name] of entries(directory)) {
      if (name.startsWith(`${source.name}@`) && name !== stored.fileName) await directory.removeEntry(name).catch(() => {});
    }
    return stored;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    let handle: FileSystemFileHandle;
    let file: File;
    try {
      handle = await this.directory.getFileHandle(this.fileName, { create: true });
      file = await handle.getFile();
    } catch {
      // Storage refused (quota exceeded, storage cleared under us): the bytes come from the source, unstored.
      this.stats.fetchedBytes += length;
      if (this.counts) this.counts.misses++;
      return this.source.read(offset, length, signal);
    }
    const stored = Math.min(file.size, this.size);
    const end = offset + length;
    if (end <= stored) {
      this.stats.storedBytes += length;
      if (this.counts) this.counts.hits++;
      return new Uint8Array(await file.slice(offset, end).arrayBuffer());
    }
    if (offset > stored) {
      this.stats.fetchedBytes += length;
      if (this.counts) this.counts.misses++;
      return this.source.read(offset, length, signal); // not contiguous with what is stored
    }
    // [offset, stored) from OPFS, [stored, end) fetched and appended: a cut-off shard resumes here.
    const out = new Uint8Array(length);
    out.set(new Uint8Array(await file.slice(offset, stored).arrayBuffer()));
    const fetched = await this.source.read(stored, end - stored, signal);
    out.set(fetched, stored - offset);
    this.stats.storedBytes += stored - offset;
    this.stats.fetchedBytes += fetched.byteLength;
    if (this.counts) this.counts.misses++;
    await writeAt(handle, stored, fetched).catch(() => {}); // a full disk costs the caching, not the load
    return out;
  }

  /** Drops the stored bytes (a shard that failed verification), so the next reads fetch it again. */
  async invalidate(): Promise<void> {
    await this.directory.removeEntry(this.fileName).catch(() => {});
  }
}

export async function writeAt(handle: FileSystemFileHandle, at: number, bytes: Uint8Array): Promise<void> {
  const sync = (handle as unknown as { createSyncAccessHandle?: () => Promise<{ write(b: Uint8Array, o: { at: number }): number; flush(): void; close(): void }> }).createSyncAccessHandle;
  if (typeof sync === 'function' && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined') {
    const access = await sync.call(handle);
    try {
      access.write(bytes, { at });
      access.flush();
    } finally {
      access.close();
    }
    return;
  }
  const writable = await handle.createWritable({ keepExistingData: true });
  try {
    await writable.seek(at);
    await writable.write(bytes as Uint8Array<ArrayBuffer>);
  } finally {
    await writable.close();
  }
}
