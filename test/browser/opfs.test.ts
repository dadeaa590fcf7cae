// Artifact shards in OPFS (src/model/opfs-store.ts), in Chromium: the first load stores each verified
// shard, the next one fetches none, a shard cut off midway resumes from its stored bytes, a corrupted
// stored shard fails its SHA-256, is dropped and fetched again (healed), and the storage helpers see it.
// A checkpoint's conversion kept in OPFS (src/model/kept-conversion.ts): equal to the CLI's artifact,
// read by the next load instead of the checkpoint, healed from the checkpoint when corrupt.
import { describe, expect, inject, it } from 'vitest';
import { TriEngine, clearModelCache, deleteCachedModel, listCachedModels } from '../../src/index.ts';
import { rangeRequests } from './range-requests.ts';

const modelUrl = (name: string) => new URL(`${inject('modelsUrl')}${name}/`, location.origin).href;
const artifactUrl = new URL(inject('artifactUrl'), location.origin).href;
/** The Range headers of the shard requests the page sends while `action` runs. */
const shardRanges = (action: () => Promise<void>) => rangeRequests(action, (url) => /weights-\d+\.bin/.test(url));

const entries = (folder: FileSystemDirectoryHandle) => (folder as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries();

async function storedShard(): Promise<FileSystemFileHandle> {
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('tri-webgpu-models');
  const folder = await root.getDirectoryHandle(encodeURIComponent(artifactUrl));
  for await (const [name, handle] of entries(folder)) {
    if (name.startsWith('weights-00001.bin@')) return handle as FileSystemFileHandle;
  }
  throw new Error('no stored shard');
}

describe('artifact shards in OPFS', () => {
  it('stores verified shards, serves the next load from them, resumes a cut-off shard and heals a corrupt one', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    const manifest = await (await fetch(`${artifactUrl}tri-webgpu-manifest.json`)).json();
    const shardBytes = manifest.shards[0].bytes as number;
    const loadAndCheck = async () => {
      const engine = await TriEngine.load(artifactUrl);
      try {
        expect(engine.weights).toEqual({ format: 'f32' });
        expect((await engine.complete(golden.prompt, { maxNewTokens: 48 })).tokenIds).toEqual(golden.greedy_ids);
      } finally {
        engine.dispose();
      }
    };

    const first = await shardRanges(loadAndCheck);
    expect(first.length).toBeGreaterThan(0);
    expect((await (await storedShard()).getFile()).size).toBe(shardBytes);
    expect(await shardRanges(loadAndCheck), 'the second load reads its shards from OPFS').toEqual([]);

    // Cut off midway (a closed tab): the next load fetches only the missing bytes.
    const half = Math.floor(shardBytes / 2 / 4) * 4;
    const writable = await (await storedShard()).createWritable({ keepExistingData: true });
    await writable.truncate(half);
    await writable.close();
    expect(await shardRanges(loadAndCheck)).toEqual([`bytes=${half}-${shardBytes - 1}`]);
    expect((await (await storedShard()).getFile()).size).toBe(shardBytes);

    // Corrupted on disk: the hash fails, the stored copy is dropped and the shard downloaded again.
    const corrupt = await (await storedShard()).createWritable({ keepExistingData: true });
    await corrupt.write({ type: 'write', position: 1000, data: new Uint8Array(64).fill(0x55) });
    await corrupt.close();
    expect(await shardRanges(loadAndCheck)).toEqual([`bytes=0-${shardBytes - 1}`]);
    expect(await shardRanges(loadAndCheck)).toEqual([]);

    const listed = await listCachedModels();
    expect(listed.find((model) => model.location === artifactUrl)?.bytes).toBeGreaterThanOrEqual(shardBytes);
    await deleteCachedModel(artifactUrl);
    expect(await listCachedModels()).toEqual([]);
  });
});

describe('storage that refuses mid-load', () => {
  it('loads from the network when OPFS throws QuotaExceededError on every file (found by the 7B proof: a 4 GiB quota)', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    const original = FileSystemDirectoryHandle.prototype.getFileHandle;
    FileSystemDirectoryHandle.prototype.getFileHandle = async function () {
      throw new DOMException('The operation failed because it would cause the application to exceed its storage quota.', 'QuotaExceededError');
    };
    try {
      for (const url of [artifactUrl, modelUrl('tri-tiny')]) {
        const engine = await TriEngine.load(url);
        expect((await engine.complete(golden.prompt, { maxNewTokens: 48 })).tokenIds, url).toEqual(golden.greedy_ids);
        engine.dispose();
      }
    } finally {
      FileSystemDirectoryHandle.prototype.getFileHandle = original;
    }
    await clearModelCache();
  });
});

describe('a checkpoint\'s conversion kept in OPFS', () => {
  const checkpointUrl = modelUrl('tri-tiny');
  const keptFolder = async (format: string) => {
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('tri-webgpu-models');
    return (await root.getDirectoryHandle(encodeURIComponent(checkpointUrl))).getDirectoryHandle(`converted-${format}`);
  };
  const tensorRanges = (action: () => Promise<void>) => rangeRequests(action, (url) => /\.safetensors/.test(url));

  it('equals the CLI\'s artifact, serves the next load without the checkpoint, and heals from the checkpoint when corrupt', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${checkpointUrl}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    let phases = new Set<string>();
    let converting = new Set<boolean>();
    const load = (options: { keepConverted?: boolean; weights?: { format: 'q4' } } = {}) => tensorRanges(async () => {
      phases = new Set();
      converting = new Set();
      const engine = await TriEngine.load(checkpointUrl, { ...options, onProgress: (progress) => (phases.add(progress.phase), converting.add(progress.converting)) });
      try {
        if (!options.weights) expect((await engine.complete(golden.prompt, { maxNewTokens: 48 })).tokenIds).toEqual(golden.greedy_ids);
      } finally {
        engine.dispose();
      }
    });

    expect((await load()).length).toBeGreaterThan(0);
    expect(phases.has('store'), 'the first load keeps what it converted').toBe(true);
    const kept = JSON.parse(await (await (await (await keptFolder('f32')).getFileHandle('tri-webgpu-manifest.json')).getFile()).text());
    const cli = await (await fetch(`${artifactUrl}tri-webgpu-manifest.json`)).json();
    // Read back from the GPU, bit for bit what the CPU converter wrote (same shard hashes, same part table).
    expect(kept.shards).toEqual(cli.shards);
    expect(kept.matrices).toEqual(cli.matrices);
    expect(kept.source).toEqual(cli.source);
    const shardBytes = kept.shards.reduce((sum: number, shard: { bytes: number }) => sum + shard.bytes, 0);
    const stored = (await listCachedModels()).find((model) => model.location === checkpointUrl)!.bytes;
    expect(stored, 'the checkpoint\'s cached tensor data is dropped once its conversion is kept').toBeLessThan(shardBytes * 1.1);

    expect(await load(), 'no checkpoint byte is read').toEqual([]);
    expect([...converting]).toEqual([false]);
    expect(phases.has('store')).toBe(false);
    expect((await TriEngine.plan(checkpointUrl)).downloadBytes).toBe(shardBytes);

    // A kept shard corrupted on disk: the load falls back to the checkpoint (downloaded again) and keeps it again.
    const shard = await (await keptFolder('f32')).getFileHandle('weights-00001.bin');
    const corrupt = await shard.createWritable({ keepExistingData: true });
    await corrupt.write({ type: 'write', position: 4096, data: new Uint8Array(64).fill(0x55) });
    await corrupt.close();
    expect((await load()).length).toBeGreaterThan(0);
    expect(phases.has('store')).toBe(true);
    expect(await load()).toEqual([]);

    // Another format is another conversion; keepConverted: false keeps none.
    await load({ weights: { format: 'q4' }, keepConverted: false });
    await expect(keptFolder('q4-g32')).rejects.toThrow();
    await deleteCachedModel(checkpointUrl);
    expect(await listCachedModels()).toEqual([]);
  });
});
